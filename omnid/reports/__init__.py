"""omnid.reports"""
