"""omnid.venues"""
