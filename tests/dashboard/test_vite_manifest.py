"""Which files an entry needs, read from a Vite manifest."""

import json

import pytest

from apps.dashboard.vite import FrontendNotBuilt, entry_assets

MANIFEST = {
    "src/main.jsx": {
        "file": "assets/dashboard-1.js",
        "isEntry": True,
        "imports": ["_shared-2.js"],
        "css": ["assets/main-3.css"],
    },
    "src/embed.jsx": {"file": "assets/embed-4.js", "isEntry": True, "imports": ["_shared-2.js"]},
    "_shared-2.js": {"file": "assets/shared-2.js", "imports": ["_react-5.js"], "css": ["assets/shared-6.css"]},
    "_react-5.js": {"file": "assets/react-5.js"},
}


@pytest.fixture
def dist(settings, tmp_path):
    settings.FRONTEND_DIST = tmp_path
    (tmp_path / ".vite").mkdir()
    (tmp_path / ".vite" / "manifest.json").write_text(json.dumps(MANIFEST))
    return tmp_path


def test_an_entry_brings_the_css_and_preloads_of_every_chunk_it_imports(dist):
    assets = entry_assets("src/main.jsx")
    assert assets.script == "assets/dashboard-1.js"
    assert assets.css == ["assets/shared-6.css", "assets/main-3.css"]
    assert assets.preload == ["assets/react-5.js", "assets/shared-2.js"]


def test_a_rebuilt_manifest_is_read_again(dist):
    assert entry_assets("src/embed.jsx").script == "assets/embed-4.js"
    changed = dict(MANIFEST, **{"src/embed.jsx": {"file": "assets/embed-9.js", "isEntry": True}})
    path = dist / ".vite" / "manifest.json"
    path.write_text(json.dumps(changed))
    import os

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert entry_assets("src/embed.jsx").script == "assets/embed-9.js"


def test_an_unknown_entry_or_a_missing_build_is_reported(dist, settings, tmp_path_factory):
    with pytest.raises(FrontendNotBuilt, match="no entry 'src/nope.jsx'"):
        entry_assets("src/nope.jsx")
    settings.FRONTEND_DIST = tmp_path_factory.mktemp("empty")
    with pytest.raises(FrontendNotBuilt, match="make frontend"):
        entry_assets("src/main.jsx")
