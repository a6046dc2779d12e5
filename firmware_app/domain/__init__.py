"""Pure domain logic of the identity file: records, codes, check digits, kana, validation.

Nothing in this package performs I/O or reads the clock; dates are passed in.
"""
