"""omnid.venues.binance"""
