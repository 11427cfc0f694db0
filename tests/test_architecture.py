"""docs/architecture.md keeps up with the code: every key, every script, every section cited."""

from __future__ import annotations

import re
from pathlib import Path

from redisjobs.keys import CLUSTER_REGISTRY, REGISTRY, QueueKeys
from redisjobs.scripts import NAMES

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "architecture.md").read_text()
CITATION = re.compile(r"docs/architecture\.md,\s+\"([^\"]+)\"")


def test_the_keyspace_names_every_key_the_code_spells() -> None:
    keys = QueueKeys("Q")
    spelled = [
        keys.ready,
        keys.prio,
        keys.carry,
        keys.paused,
        keys.limits,
        keys.hold,
        keys.key_hold("<key>"),
        keys.delayed,
        keys.dead,
        keys.stats,
        keys.control,
        keys.log,
        keys.leases,
        keys.job("<id>"),
        keys.job_log("<id>"),
        keys.status("<status>"),
        keys.job_trace("<id>"),
        keys.schedules,
        keys.schedule_due,
        keys.schedule_state("<id>"),
        *(r.queues for r in (REGISTRY, CLUSTER_REGISTRY)),
        *(r.workers for r in (REGISTRY, CLUSTER_REGISTRY)),
        *(r.worker("<id>") for r in (REGISTRY, CLUSTER_REGISTRY)),
    ]
    keyspace = PAGE.split("\n## Keyspace\n")[1].split("\n## ")[0]
    missing = [key for key in spelled if f"`{key}`" not in keyspace]
    assert not missing, missing


def test_every_script_has_its_row() -> None:
    scripts = PAGE.split("\n## Scripts\n")[1].split("\n## ")[0]
    assert [n for n in NAMES if f"\n| `{n}` |" not in scripts] == []


def test_every_section_the_code_cites_exists() -> None:
    headings = set(re.findall(r"^#+ (.+)$", PAGE, re.MULTILINE))
    cited: dict[str, Path] = {}
    for path in [*ROOT.glob("redisjobs/**/*.py"), *ROOT.glob("tests/**/*.py")]:
        for section in CITATION.findall(path.read_text()):
            cited.setdefault(" ".join(section.split()), path.relative_to(ROOT))
    assert len(cited) >= 8  # the modules that cite the page still do
    assert {s: p for s, p in cited.items() if s not in headings} == {}
