"""What a browser upload is named: the folder and the file's own name, checked like Cloud Storage checks names."""

from __future__ import annotations

import pytest

from controlplane import services


def test_upload_name_rules() -> None:
    assert services.upload_name(folder=" /in/box/ ", filename="C:\\Users\\me\\cat.png") == "in/box/cat.png"
    assert services.upload_name(folder="", filename="cat.png") == "cat.png"
    with pytest.raises(services.BadUpload):
        services.upload_name(folder="x", filename="..")
    with pytest.raises(services.BadUpload):
        services.upload_name(folder="x" * 1100, filename="a.png")
