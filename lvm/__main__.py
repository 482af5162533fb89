from lvm.cli import console_main

console_main()
