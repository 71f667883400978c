"""phigen templates module: every built-in template, forwarded as an attached
message/rfc822, half of the plain ones in quoted-printable with soft breaks inside tokens
and a legacy charset label. Tests nesting and QP."""
import random
import phigen
from email import message_from_bytes
from email.policy import default, SMTP
from email.message import EmailMessage
def wrap(f):
    def t(g):
        d = f(g)
        d.custom = "fwd"
        if not d.html and not d.attachments and g.r.random() < 0.5:
            d.qp_trick = True
            d.charset = g.pick(["utf-8", "iso-8859-1", "windows-1252"])
        return d
    t.__name__ = f.__name__
    return t
TEMPLATES = [(wrap(f), w) for f, w in phigen.TEMPLATES]
def render_extra(d, g, msgid):
    if getattr(d, "custom", None) != "fwd":
        return None
    d.custom = None
    inner = phigen.render(d, g, msgid + "-inner")
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "fwd@example.org", d.to, "Fwd: " + d.subject
    m["Message-ID"] = f"<{msgid}@x.invalid>"
    m.set_content("Forwarding for your records.\n")
    m.add_attachment(message_from_bytes(inner, policy=default))
    return m.as_bytes(policy=SMTP)
