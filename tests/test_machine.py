"""edgecv.machine: Jetson and L4T from files only (what loading an engine reads)."""

from __future__ import annotations

from pathlib import Path

from edgecv.machine import device_tree_model, is_jetson, l4t_release


def test_l4t_and_jetson_from_a_fake_root(tmp_path: Path) -> None:
    assert not is_jetson(tmp_path) and l4t_release(tmp_path) is None and device_tree_model(tmp_path) is None
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    assert is_jetson(tmp_path) and l4t_release(tmp_path) == "36.4.3"
    (tmp_path / "etc/nv_tegra_release").write_text("garbage")
    assert is_jetson(tmp_path) and l4t_release(tmp_path) is None


def test_device_tree_names_a_jetson_without_the_release_file(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    assert is_jetson(tmp_path) and device_tree_model(tmp_path) == "NVIDIA Jetson Orin Nano Developer Kit"
