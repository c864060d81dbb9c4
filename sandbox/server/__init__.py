"""The sandbox's emulator process: ARM, Entra, static-website and admin endpoints over HTTPS."""
