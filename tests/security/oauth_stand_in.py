"""Start app.py with Gradio's local stand-in for "Sign in with Hugging Face" (no network here).

Gradio's own local-development mode replaces the Hugging Face login with a profile read from the machine's
Hugging Face login (`gradio.oauth._get_mocked_oauth_info`); there is none here, so this launcher gives it a
fixed profile (STUDIO_TEST_OAUTH_USER) and then runs the real app.py as `python app.py` would. Everything
after that — the session cookie signed with OAUTH_CLIENT_SECRET, the middleware, the app — is the real code.
"""

import os
import runpy
import sys
import time
from pathlib import Path

import gradio.oauth

USER = os.environ.get("STUDIO_TEST_OAUTH_USER", "stand-in-user")


def _profile():
    return {
        "access_token": "stand-in-token",
        "token_type": "bearer",
        "expires_at": int(time.time()) + 3600,
        "scope": "openid profile",
        "userinfo": {
            "sub": "1",
            "name": USER,
            "preferred_username": USER,
            "profile": f"https://huggingface.co/{USER}",
            "picture": "",
        },
    }


gradio.oauth._get_mocked_oauth_info = _profile
app = Path(__file__).resolve().parents[2] / "app.py"
sys.argv = [str(app)]
sys.path.insert(0, str(app.parent))
runpy.run_path(str(app), run_name="__main__")
