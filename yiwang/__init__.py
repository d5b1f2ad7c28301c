"""Yiwang (一网) domain package: no Tornado in here.

Each module is one concept; functions take plain values and a store, return
plain values and raise :mod:`yiwang.errors` exceptions.
"""
