"""PyInstaller entry point of the bundled ``lvm-explorer`` (the same as the ``lvm-explorer`` console script)."""

from app.main import console_main

if __name__ == "__main__":
    console_main()
