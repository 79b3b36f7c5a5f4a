"""PII-SECRET: every secret kind is caught, URL paths and file names are not, and no finding,
report or rejected row ever echoes any part of a secret."""

from __future__ import annotations

import json

import pytest

from studio.data.lint import lint_rows
from studio.data.records import Row
from studio.data.rules import secrets

_WORDS = "anchor harbour compass river mountain bread lantern rope island storm parrot cannon biscuit tide reef".split()


def filler(count: int = 12) -> list[dict]:
    """Distinct clean rows: no secret rule fires on them."""
    return [
        chat(
            user=f"Question {i}: what about the {_WORDS[i % 15]} and the {_WORDS[(3 * i + 1) % 15]}?",
            answer=f"Answer {i}: the {_WORDS[(i + 2) % 15]} is fine and the {_WORDS[(5 * i + 3) % 15]} is well kept.",
        )
        for i in range(count)
    ]


def chat(user="What is the tide doing tonight?", answer="The tide turns at nine tonight.", system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
    ]
    return {"messages": messages}


SECRETS = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "a1B2c3D4e5" * 4,
    "github_pat": "github_pat_" + "11ABCDEFG0" * 5,
    "openai": "sk-proj-" + "Ab3dEf6hIj" * 3,
    "anthropic": "sk-ant-api03-" + "Zx9Yw8Vu7T" * 3,
    "slack": "xoxb-1234567890-abcdefghij",
    "slack_webhook": "https://hooks.slack.com/services/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",
    "hf": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "google": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9x2\n-----END RSA PRIVATE KEY-----",
    "bare_random": "9fQ2xLr7Vb3Kp8ZtW1mNc6Hy4Jd0Gs5A",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "azure_like_base64": "Xy7Qp2Lm9Rt4Vb8Nc3Kd6Fh1Jg5Ws0Ez+Aq7Bt2Cy9Du4Ev8Fw3Gx6Hz1Ia5Jb0Kc==",
}

# (text around the secret, the secret) for assignments, URLs with credentials and query tokens.
ASSIGNED = [
    ('api_key = "{}"', "3f9a1c7e5b2d8f4a6c0e9b1d"),
    ("SECRET_KEY={}", "d41d8cd98f00b204e9800998ecf8427e"),
    ('{{"client_secret": "{}"}}', "Zm9vYmFyYmF6cXV4MTIzNDU2"),
    ("password: {}", "Tr0ub4dor3xkcdCorrectHorse9"),
    ("curl https://api.example.org/v1/items?access_token={}", "a8f5f167f44f4964e6c998dee827110c"),
    ("postgres://admin:{}@db.internal:5432/app", "s3cretPassw0rd2024"),
]

NOT_SECRETS = [
    "See https://upload.wikimedia.org/wikipedia/commons/4/4f/Edgar_Degas_059.jpg for the painting.",
    "The image is upload.wikimedia.org/wikipedia/commons/4/4f/Edgar_Degas_059.jpg on Commons.",
    "Open /home/sailor/Documents/Voyage_Logs_2023/North_Sea_Crossing_Day_14_Final.txt please.",
    "Saved as IMG_20230101_123456789_HDR_final_Version2.jpg on the phone.",
    "Read https://github.com/huggingface/transformers/blob/main/src/transformers/models/llama/modeling_llama.py today.",
    "The drive link https://drive.google.com/file/d/1A2b3C4d5E6f7G8h9I0jKlMnOpQrStUvW/view?usp=sharing works.",
    "Inline image: data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6"
    "kgAAAABJRU5ErkJggg==",
    "The commit is 3f9a1c7e5b2d8f4a6c0e9b1d2a7f3e5c9b8d1a6f and the id 123e4567-e89b-12d3-a456-426614174000.",
    "Call getUserAccountSettingsFromDatabase2024 then ConvertHtmlToMarkdownWithTables.",
    'Set api_key = "YOUR_API_KEY_HERE_123456" in the config, or password: <your-password-here-123>.',
    "The tokenizer = AutoTokenizer.from_pretrained(model_name_or_path_2024) line loads it.",
    "-----BEGIN PUBLIC KEY----- is fine to share.",
]


def lint(records):
    return lint_rows([Row(number=index + 1, raw=record) for index, record in enumerate(records)])


def secret_findings(report, row=13):
    return [f for f in report.findings if f.rule == "PII-SECRET" and f.row == row]


def _pieces(secret: str, size: int = 6) -> set[str]:
    core = secret.split("://")[-1]
    return {core[i : i + size] for i in range(0, max(1, len(core) - size + 1))}


def assert_not_echoed(text: str, secret: str) -> None:
    leaked = [piece for piece in _pieces(secret) if piece in text]
    assert not leaked, f"{leaked[:3]} of the secret appear in {text!r}"


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_every_secret_kind_is_caught_and_never_echoed(kind):
    secret = SECRETS[kind]
    report = lint(filler() + [chat(answer=f"Here it is: {secret} (do not share).")])
    found = secret_findings(report)
    assert found and found[0].severity == "E", [f for f in report.findings if f.row == 13]
    for finding in found:
        assert_not_echoed(finding.message + finding.hint, secret)
    assert_not_echoed(json.dumps(report.to_json()), secret)
    masked = secrets.mask_secrets(f"Here it is: {secret} (do not share).")
    assert secrets.MASK in masked and masked.startswith("Here it is: ")
    assert_not_echoed(masked, secret)


@pytest.mark.parametrize("template,secret", ASSIGNED)
def test_assigned_secrets_are_caught(template, secret):
    text = template.format(secret)
    found = secret_findings(lint(filler() + [chat(answer=text)]))
    assert found, text
    assert_not_echoed(found[0].message, secret)
    assert_not_echoed(secrets.mask_secrets(text), secret)


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_urls_paths_file_names_and_placeholders_are_not_secrets(text):
    assert not secret_findings(lint(filler() + [chat(answer=text)])), secrets.secret_spans(text)
    assert secrets.mask_secrets(text) == text


def test_the_wikimedia_row_from_the_public_dataset_is_not_blocked():
    row = {
        "instruction": "Describe the painting at https://upload.wikimedia.org/wikipedia/commons/4/4f/Edgar_Degas_059.jpg",
        "input": "",
        "output": "A ballet rehearsal painted by Edgar Degas; file Edgar_Degas_059.jpg on Wikimedia Commons.",
    }
    report = lint(
        [
            {"instruction": f"Question {i} about painters?", "input": "", "output": f"Answer {i} about painters."}
            for i in range(12)
        ]
        + [row]
    )
    assert not secret_findings(report)


def test_a_secret_in_a_url_query_or_known_format_inside_a_url_is_still_caught():
    text = (
        f"Fetch https://example.org/download?file=report.pdf&api_key=9fQ2xLr7Vb3Kp8ZtW1mN now, token "
        f"{SECRETS['github']}."
    )
    spans = secrets.secret_spans(text)
    assert [span.kind for span in spans][:1] == ["a secret assigned to a key, token or password name"]
    assert any("GitHub" in span.kind for span in spans)


def test_quoting_findings_never_echo_a_secret():
    """Rules that quote text (placeholders, refusals, system prompts) mask secrets before cutting."""
    secret = SECRETS["bare_random"]
    system = f"You are a bot. Key {secret}."
    rows = filler(30) + [chat(system=system, user=f"Q{i}?", answer=f"A{i} is fine and done.") for i in range(3)]
    rows.append(chat(answer=f"As an AI language model I cannot share {secret} with you, sorry."))
    report = lint(rows)
    for finding in report.findings:
        assert_not_echoed(finding.message + finding.hint, secret)


def test_rejected_rows_keep_the_secret_masked(tmp_path):
    from studio.data import clean

    secret = SECRETS["aws"]
    record = {
        "messages": [
            {"role": "user", "content": "What is the key?"},
            {"role": "assistant", "content": f"The key is {secret}."},
        ],
        "note": f"copy {secret}",
    }
    report = lint(filler(20) + [record])
    result = clean.clean_and_split(report, validation_fraction=0.2, seed=1)
    rejected = [item for item in result.rejected if item["row"] == 21]
    assert rejected and rejected[0]["reasons"][0]["rule"] == "PII-SECRET"
    text = json.dumps(result.rejected)
    assert_not_echoed(text, secret)
    assert secrets.MASK in text and "The key is" in text  # the rest of the row is kept as found
