"""app/labs/inpainting"""
