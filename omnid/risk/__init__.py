"""omnid.risk"""
