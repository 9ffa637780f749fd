#!/usr/bin/python3
"""The chat page in a real browser (issue 16): headless Chromium, driven
through chromedriver with Selenium (Debian's chromium, chromium-driver and
python3-selenium), against a `flatline serve` process on the bundled demo
model. It sends two messages, waits for both streamed replies, checks that
the second turn's figure shows only the prompt tokens the server processed
for it (its answer in /flatline/stats, which must be fewer than the whole
history), that hostile markup in a reply or a message shows as text, and
saves screenshots (desktop light, phone dark).

usage: chat_page_test.py FLATLINE_BINARY SOURCE_DIR [SCREENSHOT_DIR]
Exit 0 = passed, 1 = failed, 77 = skipped (no browser here).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

START = time.time()


def log(text):
    print(f"[{time.time() - START:5.1f}s] {text}", flush=True)

SKIP = 77
CHROMIUM = os.environ.get("FLATLINE_CHROMIUM", "/usr/bin/chromium")  # override: try another browser, or none
CHROMEDRIVER = "/usr/bin/chromedriver"
# (markdown, the DOM it becomes: [tag, children...] or text)
MARKDOWN_CASES = [
    ("plain **bold** and *it*", [["p", "plain ", ["strong", "bold"], " and ", ["em", "it"]]]),
    ("**bold with *inner* text** end", [["p", ["strong", "bold with ", ["em", "inner"], " text"], " end"]]),
    ("<script>alert(1)</script>", [["p", "<script>alert(1)</script>"]]),
    ("x <img src=x onerror=alert(1)> y", [["p", "x <img src=x onerror=alert(1)> y"]]),
    ("`<b>` code", [["p", ["code", "<b>"], " code"]]),
    ("[a](javascript:evil) [b](https://x.org)", [["p", "a", " ", ["a", "b"]]]),
    ("# Title\n\n- one\n- two", [["h3", "Title"], ["ul", ["li", "one"], ["li", "two"]]]),
    ("```js\nlet a = '<b>';\n```", [["div", ["div", ["span", "js"]], ["pre", ["code", "let a = '<b>';"]]]]),
]
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> **bold** `<b>code</b>`'


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(SKIP)


def fail(why):
    print(f"FAIL: {why}")
    sys.exit(1)


def start_server(binary, models_dir, log_dir):
    out = open(os.path.join(log_dir, "serve.out"), "w")
    err = open(os.path.join(log_dir, "serve.err"), "w")
    proc = subprocess.Popen([binary, "serve", "--models", models_dir, "--port", "0", "-t", "1",
                             "--max-memory", "512M", "--cache-memory", "64M"], stdout=out, stderr=err)
    deadline = time.time() + 20
    while time.time() < deadline:
        with open(out.name) as f:
            for line in f:
                if line.startswith("listening on "):
                    return proc, line[len("listening on "):].strip()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    with open(err.name) as f:
        fail("flatline serve did not start:\n" + f.read())


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    binary, source = sys.argv[1], sys.argv[2]
    shots = sys.argv[3] if len(sys.argv) > 3 else None
    if not os.access(CHROMIUM, os.X_OK) or not os.access(CHROMEDRIVER, os.X_OK):
        skip(f"{CHROMIUM} or {CHROMEDRIVER} missing (Debian packages chromium, chromium-driver: "
             "tools/install-deps.sh); the browser test of the chat page did not run")
    try:
        from selenium import webdriver
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import Select, WebDriverWait
    except ImportError:
        skip("python3-selenium missing (tools/install-deps.sh); the browser test of the chat page did not run")
    demo = os.path.join(source, "models", "flatline-demo-kjv.gguf")
    if not os.path.exists(demo):
        fail(f"the bundled demo model {demo} is missing")

    work = tempfile.mkdtemp(prefix="flatline-browser-")
    models = os.path.join(work, "models")
    os.makedirs(models)
    shutil.copyfile(demo, os.path.join(models, "demo.gguf"))  # 7 MB; the catalog lists regular files
    # A random-weight LLaDA from the shared fixtures, when present, for the
    # diffusion canvas (FLATLINE_SHARED_DIR, as the other tests).
    shared = os.environ.get("FLATLINE_SHARED_DIR", os.path.join(source, "..", "shared"))
    llada = os.path.join(shared, "models", "random", "llada.gguf")
    diffusion = os.path.exists(llada)
    if diffusion:
        shutil.copyfile(llada, os.path.join(models, "llada.gguf"))
    else:
        log(f"{llada} not found: the diffusion canvas is not checked (set FLATLINE_SHARED_DIR)")
    server, url = start_server(binary, models, work)
    driver = None
    try:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,860", "--force-device-scale-factor=1", "--hide-scrollbars",
                  f"--user-data-dir={work}/profile", "--no-first-run", "--disable-extensions"]:
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        except WebDriverException as e:
            skip(f"headless Chromium did not start here: {str(e).splitlines()[0]}")
        driver.set_page_load_timeout(15)
        driver.set_script_timeout(15)
        wait = WebDriverWait(driver, 20, poll_frequency=0.05)
        js = driver.execute_script

        driver.get(url + "/")
        try:
            wait.until(lambda d: js("return document.getElementById('model-select').value").startswith("demo"))
        except TimeoutException:
            fail("the model picker did not list the demo model; it shows " +
                 repr(js("return document.getElementById('model-select').innerText")) +
                 f", console: {driver.get_log('browser')}")
        if js("return document.contentType") != "text/html":
            fail("GET / did not give the browser an HTML page")

        def set_option(field, value):
            driver.find_element(By.ID, "toggle-settings").click()
            box = driver.find_element(By.ID, field)
            box.clear()
            if value:
                box.send_keys(value)
            else:  # clear() fires no input event: the page would keep the old value
                js("arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", box)
            driver.find_element(By.ID, "toggle-settings").click()

        # Short greedy replies keep the test fast and the text repeatable.
        set_option("opt-temperature", "0")
        set_option("opt-num_predict", "24")

        prompt = driver.find_element(By.ID, "prompt")

        def send_and_wait(text, turn):
            prompt.send_keys(text)
            prompt.send_keys(Keys.ENTER)  # Enter sends (Shift+Enter is a new line)
            # The stop button shows while the reply streams.
            try:
                wait.until(lambda d: js(f"return document.querySelector('#stats-table tr[data-turn=\"{turn}\"]') !== null"))
            except TimeoutException:
                fail(f"turn {turn}: no reply figures after 20 s; page says: " +
                     js("return document.getElementById('messages').innerText")[-500:])
            reply = js(f"return document.querySelector('article.assistant[data-turn=\"{turn}\"] .message-body').innerText")
            error = js(f"return document.querySelector('article.assistant[data-turn=\"{turn}\"] .message-error')?.innerText")
            if error:
                fail(f"turn {turn}: the page shows an error: {error}")
            if not reply.strip():
                fail(f"turn {turn}: empty reply")
            return reply

        # Shift+Enter adds a line instead of sending.
        prompt.send_keys("In the beginning")
        prompt.send_keys(Keys.SHIFT, Keys.ENTER)
        if "\n" not in prompt.get_attribute("value") or js("return document.querySelectorAll('article').length") > 0:
            fail("Shift+Enter did not insert a new line (or it sent the message)")
        prompt.clear()

        first = send_and_wait("In the beginning God created", 1)
        t1 = get_json(url + "/flatline/stats")["last_turn"]
        second = send_and_wait("And the earth was without form", 2)
        t2 = get_json(url + "/flatline/stats")["last_turn"]
        log(f"turn 1 reply: {first[:60]!r}")
        log(f"turn 2 reply: {second[:60]!r}")
        log(f"server: turn 1 processed {t1['prompt_eval_count']} of {t1['prompt_tokens']} prompt tokens, "
              f"turn 2 {t2['prompt_eval_count']} of {t2['prompt_tokens']} ({t2['cached_tokens']} cached)")

        row = js("const r = document.querySelector('#stats-table tr[data-turn=\"2\"]'); return {...r.dataset};")
        if int(row["promptEval"]) != t2["prompt_eval_count"]:
            fail(f"turn 2's figure shows {row['promptEval']} prompt tokens, the server processed {t2['prompt_eval_count']}")
        if not (t2["cached_tokens"] > 0 and t2["prompt_eval_count"] < t2["prompt_tokens"]):
            fail(f"turn 2 re-processed the history: {t2}")
        if int(row["promptTokens"]) != t2["prompt_tokens"] or int(row["stateBytes"]) != t2["state_bytes"]:
            fail(f"turn 2's row {row} does not match the server's {t2}")
        # The chart's point for turn 2 on the prompt-tokens line says the same.
        dot = js("return [...document.querySelectorAll('#charts g[data-series=\"prompt tokens processed\"] circle title')]"
                 ".map(t => t.textContent)")
        if dot != [f"turn 1: {t1['prompt_eval_count']} tokens", f"turn 2: {t2['prompt_eval_count']} tokens"]:
            fail(f"the prompt-tokens chart shows {dot}")
        if js("return document.querySelectorAll('#charts svg').length") != 2:
            fail("expected two charts (speed and prompt work, memory)")

        log("figures checked")

        # Stop: a long reply (no length limit; the demo is recurrent, so it
        # runs to the server's reply cap), stopped once text streams in.
        set_option("opt-num_predict", "")
        prompt.send_keys("Tell the whole story")
        prompt.send_keys(Keys.ENTER)
        try:
            wait.until(lambda d: js("return document.querySelector('article.assistant[data-turn=\"3\"] .markdown')"
                                    "?.textContent.length > 0 && !document.getElementById('stop').hidden"))
        except TimeoutException:
            fail("the third reply did not start streaming (or finished before it could be stopped)")
        driver.find_element(By.ID, "stop").click()
        wait.until(lambda d: js("return document.getElementById('stop').hidden && !document.getElementById('send').hidden"))
        if not js("return document.querySelector('article.assistant[data-turn=\"3\"] .stopped-note') !== null"):
            fail("the stopped reply is not marked as stopped")
        log("stop button stopped the third reply")
        set_option("opt-num_predict", "24")

        if diffusion:
            # A diffusion model: the reply shows the canvas being refined.
            driver.find_element(By.ID, "new-chat").click()
            names = js("return [...document.querySelectorAll('#model-select option')].map(o => o.value)")
            if "llada:latest" not in names:
                fail(f"the model picker does not list llada: {names}")
            Select(driver.find_element(By.ID, "model-select")).select_by_value("llada:latest")
            js("""window.__canvases = [];
                  new MutationObserver(() => {
                    const c = document.querySelector('#messages .canvas');
                    if (c) window.__canvases.push([c.querySelector('.canvas-label').textContent,
                                                   c.querySelector('.canvas-text').textContent]);
                  }).observe(document.getElementById('messages'), {childList: true, subtree: true});""")
            prompt.send_keys("Once upon a time")
            prompt.send_keys(Keys.ENTER)
            if shots:  # a picture of the canvas, when the screenshot is quick enough to catch one
                try:
                    WebDriverWait(driver, 5, poll_frequency=0.01).until(
                        lambda d: js("return document.querySelector('#messages .canvas') !== null"))
                    os.makedirs(shots, exist_ok=True)
                    driver.save_screenshot(os.path.join(shots, "webui-diffusion.png"))
                except TimeoutException:
                    pass
            try:
                wait.until(lambda d: js("return document.querySelector('#stats-table tr[data-turn=\"1\"]') !== null"))
            except TimeoutException:
                fail("no reply from the diffusion model: " + js("return document.getElementById('messages').innerText"))
            seen = js("return window.__canvases")
            if not seen or not any("\u2591" in text for _, text in seen) or not seen[0][0].startswith("refining: step "):
                fail(f"the diffusion canvas was not shown while refining: {seen[:3]}")
            if js("return document.querySelector('#messages .canvas')") is not None:
                fail("the canvas stayed after the reply was done")
            log(f"diffusion: {len(seen)} canvas updates, first {seen[0]!r}")
            # Delete it (two clicks) and go back to the demo conversation.
            delete = driver.find_element(By.CSS_SELECTOR, "#conversation-list li.active .delete-button")
            delete.click()
            delete.click()
            wait.until(lambda d: js("return document.querySelectorAll('#conversation-list li').length") == 2)
            driver.find_element(By.CSS_SELECTOR, "#conversation-list li:not(.active) .conversation-open").click()
            if js("return document.querySelectorAll('article.assistant').length") != 3:
                fail("the demo conversation did not come back with its three replies")

        # The markdown renderer on what models write (web/markdown.js, as the
        # page loads it): each case's expected DOM, as tag names and text.
        cases = driver.execute_async_script("""
          const done = arguments[arguments.length - 1];
          import('/ui/markdown.js').then(({ renderMarkdown }) => {
            const shape = (n) => n.nodeType === 3 ? n.textContent
              : [n.tagName.toLowerCase(), ...[...n.childNodes].map(shape)];
            done(arguments[0].map((t) => shape(renderMarkdown(t)).slice(1)));
          }, (e) => done(String(e)));""", [c[0] for c in MARKDOWN_CASES])
        for (text, expected), got in zip(MARKDOWN_CASES, cases):
            if got != expected:
                fail(f"markdown {text!r} rendered as {got}, expected {expected}")
        log(f"{len(MARKDOWN_CASES)} markdown cases render as expected")
        # Hostile markup stays text: as a message the user sends (not sent
        # to the server, only rendered) and as a stored reply from a model.
        js("""
          const key = Object.keys(localStorage).find(k => k.startsWith('flatline.conversation.v1.'));
          const c = JSON.parse(localStorage.getItem(key));
          c.messages.push({role: 'user', content: arguments[0]}, {role: 'assistant', content: arguments[0]});
          localStorage.setItem(key, JSON.stringify(c));""", HOSTILE)
        log("stored")
        driver.refresh()
        log("reloaded with hostile markup")
        wait.until(lambda d: js("return document.querySelectorAll('article.assistant').length") == 4)
        bodies = js("return [...document.querySelectorAll('#messages .message-body')].map(b => b.textContent)")
        if js("return window.__pwned") is not None:
            fail("model output ran as script")
        if js("return document.querySelectorAll('#messages script, #messages img, #messages b').length") != 0:
            fail("model output became HTML elements")
        if not any("<script>window.__pwned = 1</script>" in b for b in bodies[-2:]):
            fail(f"the markup is not shown as text: {bodies[-2:]}")
        if js("return document.querySelector('article.assistant[data-turn=\"4\"] strong')?.textContent") != "bold":
            fail("markdown (**bold**) was not rendered next to the escaped markup")
        # The two real turns are still there after the reload (localStorage).
        if js("return document.querySelectorAll('#conversation-list li').length") != 1:
            fail("the conversation is not listed after a reload")

        if shots:
            os.makedirs(shots, exist_ok=True)
            # Back to the two real turns for the picture.
            js("""
              const key = Object.keys(localStorage).find(k => k.startsWith('flatline.conversation.v1.'));
              const c = JSON.parse(localStorage.getItem(key));
              c.messages = c.messages.slice(0, 4);
              localStorage.setItem(key, JSON.stringify(c));
              const s = JSON.parse(localStorage.getItem('flatline.settings.v1')); s.theme = 'light';
              localStorage.setItem('flatline.settings.v1', JSON.stringify(s));""")
            driver.refresh()
            wait.until(lambda d: js("return document.querySelectorAll('article.assistant').length") == 2)
            driver.save_screenshot(os.path.join(shots, "webui-chat.png"))
            driver.set_window_size(390, 844)
            js("""const s = JSON.parse(localStorage.getItem('flatline.settings.v1')); s.theme = 'dark';
                  localStorage.setItem('flatline.settings.v1', JSON.stringify(s));""")
            driver.refresh()
            wait.until(lambda d: js("return document.querySelectorAll('article.assistant').length") == 2)
            if js("return document.documentElement.scrollWidth") > 390:
                fail("the page is wider than a phone screen (390 px): " +
                     str(js("return document.documentElement.scrollWidth")))
            driver.save_screenshot(os.path.join(shots, "webui-phone-dark.png"))
            print(f"screenshots in {shots}")

        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if errors:
            fail(f"the browser console has errors: {errors}")
        print("PASS: two streamed turns, turn 2 processed only its new tokens, markup shown as text")
        return 0
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
