"""omnid.storage"""
