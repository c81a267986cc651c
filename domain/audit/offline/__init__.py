"""Offline verification: trail bundles and promotion receipts, checked with public keys only.

Pure code (no database, Redis or network): ``bundle`` holds the JSON formats, ``trail`` checks
a bundle and folds its entries, ``receipt`` checks a promotion receipt.
"""
