"""omnid.strategies"""
