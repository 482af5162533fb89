"""app/labs/infinite"""
