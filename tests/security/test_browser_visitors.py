"""Two visitors of a public studio in two browser contexts: each sees only their own run and the shared demo
run — in the Train history and in Compare's run list — and the page says what a visitor may do, with no
server path on it. Identities come the real way: the signed token in each browser's localStorage."""

from __future__ import annotations

import pytest

from studio.ui.train_live import BROWSER_ID_KEY
from tests.browser import until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_two_visitors_see_only_their_own_runs_and_the_shared_demo(browser, public_app, output_dir):
    world = public_app.world
    a, b = world.visitors
    demo_name = "run shared-demo"
    for me, other in ((a, b), (b, a)):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(f"window.localStorage.setItem('{BROWSER_ID_KEY}', '{me.token}')")
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(public_app.url)
            page.wait_for_selector("#studio-tabs")
            until(page, "text('#studio-access').includes('Public studio')")
            page.get_by_role("tab", name="Train").click()
            until(page, f"text('#train-history').includes('{me.name}')")
            history = page.inner_text("#train-history")
            assert demo_name in history
            for hidden in (other.name, world.victim_run.name, *world.canaries):
                assert hidden not in history
            page.get_by_role("tab", name="Compare").click()
            page.locator("#compare-run input").click()
            options = page.get_by_role("option")
            labels = [options.nth(i).inner_text() for i in range(options.count())]
            assert any(me.name in label for label in labels) and any(demo_name in label for label in labels), labels
            assert not any(other.name in label for label in labels), labels
            body = page.inner_text("body")
            assert str(world.home) not in body and "Traceback" not in body
            page.screenshot(path=str(output_dir / f"security-visitor-{me.name.split()[-1]}.png"), full_page=False)
            token = page.evaluate(f"window.localStorage.getItem('{BROWSER_ID_KEY}')")
            assert token == me.token  # the server kept this browser's identity
        finally:
            context.close()
