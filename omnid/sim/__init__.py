"""omnid.sim"""
