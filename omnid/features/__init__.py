"""omnid.features"""
