"""app/labs/mixture"""
