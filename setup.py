"""Legacy entry point. The build is meson.build (meson-python, pyproject.toml); this file
only forwards `python setup.py build|install|develop|bdist_wheel` to the same PEP 517
build through pip, so there is never a second list of modules or flags."""
import subprocess
import sys

COMMANDS = {
    "install": ["install", "."],
    "build": ["wheel", "--no-deps", "-w", "dist", "."],
    "bdist_wheel": ["wheel", "--no-deps", "-w", "dist", "."],
    "develop": ["install", "--no-build-isolation", "-e", "."],
}

if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd not in COMMANDS:
        sys.exit("usage: python setup.py {%s}\n(the build is meson-python: `pip install .`)"
                 % "|".join(COMMANDS))
    sys.exit(subprocess.call([sys.executable, "-m", "pip", *COMMANDS[cmd]]))
