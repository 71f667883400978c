"""phigen templates module: every built-in template, rendered as an HTML-only body with
character references for digits and dashes and empty inline tags or comments inside
words (quoted-printable or base64). Tests that HTML handling loses no identifier."""
import html as H, random
import phigen
rng = random.Random(3)
def wrap(f):
    def t(g):
        d = f(g)
        d.custom = "html_all"
        return d
    t.__name__ = f.__name__
    return t
TEMPLATES = [(wrap(f), w) for f, w in phigen.TEMPLATES]
def mangle(text):
    out = []
    for ch in text:
        if ch == "\n":
            out.append("<br>\n")
        elif ch.isdigit() and rng.random() < 0.15:
            out.append(f"&#{ord(ch)};")
        elif ch in "-/" and rng.random() < 0.3:
            out.append(rng.choice(["&#8209;", "&ndash;", "&#45;"]) if ch == "-" else "&#47;")
        elif ch.isalnum() and rng.random() < 0.05:
            out.append(rng.choice(["<b></b>", "<span></span>", "<!-- x -->", "<font color=red></font>"]) + ch)
        else:
            out.append(H.escape(ch))
    return "".join(out)
def render_extra(d, g, msgid):
    if getattr(d, "custom", None) != "html_all":
        return None
    from email.message import EmailMessage
    from email.policy import SMTP
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = d.sender, d.to, d.subject
    m["Message-ID"] = f"<{msgid}@x.invalid>"
    m.set_content("<html><body><p>" + mangle(d.text) + "</p></body></html>", subtype="html", cte=g.pick(["quoted-printable", "base64"]))
    for fname, mime, data in d.attachments:
        main, sub = mime.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=fname)
    return m.as_bytes(policy=SMTP)
