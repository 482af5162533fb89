"""app/labs/latent"""
