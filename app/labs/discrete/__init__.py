"""app/labs/discrete"""
