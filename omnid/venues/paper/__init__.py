"""omnid.venues.paper"""
