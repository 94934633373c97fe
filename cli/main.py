"""Entry point: ``irstd train | detect | evaluate | compare | data | synth``.

Command functions live in one module each and only parse options, call library code and render.
"""

from __future__ import annotations

from irstd.cli._common import new_app

app = new_app(help="Infrared small target detection: CgriNet, LCM, IPI, NRAM and the community metrics.")

# Commands are registered here, one line each, as their modules land:
# app.command()(evaluate) etc.


def main() -> None:
    app()


if __name__ == "__main__":
    main()
