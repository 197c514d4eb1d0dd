"""Every directive the module registers has its entry in docs/directives.md and a line in the
mod_acme(8) man page (test_config.py checks each has a configtest error case); every a2acme
command in its --help has a paragraph in a2acme(8). Reads files only: no process is started."""
import re

import harness

SRC = harness.REPO / "httpd" / "acme_config.c"


def _directives():
    names = set(re.findall(r'AP_INIT_[A-Z0-9_]+\("<?([A-Za-z0-9]+)"', SRC.read_text()))
    assert len(names) > 20, names
    return sorted(names)


def test_every_directive_is_documented_and_in_the_man_page():
    reference = (harness.REPO / "docs" / "directives.md").read_text()
    man = (harness.REPO / "docs" / "man" / "mod_acme.8").read_text()
    missing_doc = [d for d in _directives() if not re.search(rf"^## {d}\b", reference, re.M)]
    missing_man = [d for d in _directives() if not re.search(rf'"{d} |"{d}"|\b{d}\b', man)]
    assert not missing_doc, f"no '## NAME' entry in docs/directives.md for {missing_doc}"
    assert not missing_man, f"no line in docs/man/mod_acme.8 for {missing_man}"


def test_every_a2acme_command_is_in_its_man_page():
    help_text = (harness.REPO / "src" / "a2acme.c").read_text()
    commands = set(re.findall(r'^"  ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)?) ', help_text, re.M))
    man = (harness.REPO / "docs" / "man" / "a2acme.8").read_text().replace("\\-", "-")
    man = re.sub(r"\\f[BIR]", "", man)
    missing = [c for c in sorted(commands) if not re.search(rf"^(\.B[RI]? )?\"?{c}\b", man, re.M)]
    assert len(commands) >= 5, commands
    assert not missing, f"a2acme commands without a paragraph in docs/man/a2acme.8: {missing}"
