#!/usr/bin/env python3
"""Checks a `rankwise report` page the way a user's browser sees it (standard library only).

  check_report.py [--no-static] PAGE.html SCREENSHOT.png [CHROMIUM]

1. The HTML loads and runs nothing: no script, link, img, iframe, object or embed element, no event
   handler attribute (on...), no attribute pointing at a URL (anything with "://" or starting with "//"),
   no url(...) or @import in styles. (Text may mention URLs: tweets do.) --no-static skips this step
   (to check that step 2 alone catches a page that logs to the console).
2. Headless Chromium renders it with console logging on: any console message (an error, an uncaught
   exception, a failed load) fails the check.
3. The screenshot is not blank: it is decoded (PNG, zlib, scanline filters) and must have more than 2%
   of its pixels away from the background colour and more than 50 distinct colours.
Prints one JSON line and exits 1 on any failure.
"""
import html.parser, json, os, struct, subprocess, sys, zlib
from collections import Counter

args = [a for a in sys.argv[1:] if a != "--no-static"]
static = "--no-static" not in sys.argv
page, shot = args[0], args[1]
chromium = args[2] if len(args) > 2 else "chromium"
problems = []

class Scan(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.in_style = False
    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img", "iframe", "object", "embed", "base", "frame", "audio", "video", "source"):
            problems.append(f"<{tag}> element")
        if tag == "style": self.in_style = True
        for k, v in attrs:
            v = (v or "").strip()
            if k.lower().startswith("on"): problems.append(f"<{tag} {k}=...> event handler")
            if "://" in v or v.startswith("//") or (k in ("src", "href", "xlink:href", "action") and v):
                problems.append(f"<{tag} {k}={v[:60]!r}>")
            if k == "style" and ("url(" in v or "@import" in v): problems.append(f"<{tag} style> loads {v[:60]!r}")
    def handle_endtag(self, tag):
        if tag == "style": self.in_style = False
    def handle_data(self, data):
        if self.in_style and ("url(" in data or "@import" in data): problems.append("a style loads a resource")

text = open(page, encoding="utf-8").read()
if static: Scan().feed(text)

if os.path.exists(shot): os.remove(shot)
r = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1240,1600",
                    "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "file://" + os.path.abspath(page)],
                   capture_output=True, text=True, timeout=120)
console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l]
problems += [f"console: {l.split(']', 1)[-1].strip()[:160]}" for l in console]
if not os.path.exists(shot): problems.append(f"no screenshot (chromium exit {r.returncode}: {r.stderr[-300:]})")

def pixels(path):
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(b):
        n, kind = struct.unpack(">I4s", b[pos:pos + 8]); data = b[pos + 8:pos + 8 + n]; pos += 12 + n
        if kind == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", data[:10]); assert depth == 8 and ctype in (2, 6), "unsupported PNG"
        elif kind == b"IDAT": idat += data
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, out = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0; up = prev[i]; c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + up) & 255
            elif f == 3: line[i] = (line[i] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        out += [bytes(line[i:i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return out

stats = {}
if os.path.exists(shot):
    px = pixels(shot)
    counts = Counter(px)
    background, n = counts.most_common(1)[0]
    stats = {"pixels": len(px), "non_background": round(1 - n / len(px), 4), "colours": len(counts)}
    if stats["non_background"] <= 0.02 or stats["colours"] <= 50: problems.append(f"the screenshot looks blank: {stats}")

print(json.dumps({"page": page, "ok": not problems, "problems": problems[:10], **stats}))
sys.exit(0 if not problems else 1)
