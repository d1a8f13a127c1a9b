"""What ``eascmd server --demo`` deploys: the echo processor in ``echo/``, shipped inside the
package (package data), so the demo works from an installed OpenEAS as from a checkout.

``echo/app.py`` is a processor package like any user's (an ``allspark`` processor and
nothing else): it is uploaded to the installation and served by an instance, never
imported by the core.
"""

from __future__ import annotations

from pathlib import Path

ECHO = Path(__file__).resolve().parent / "echo"
