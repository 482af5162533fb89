"""app/labs/inference"""
