"""omnid.ops"""
