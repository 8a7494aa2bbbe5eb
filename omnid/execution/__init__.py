"""omnid.execution"""
