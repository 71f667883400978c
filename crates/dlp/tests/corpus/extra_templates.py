"""Extra message templates for phigen.py, written for carepost's DLP tests.

    python3 ../shared/corpus/phigen.py --seed 5 --count 300 --out /tmp/extra \
        --templates crates/dlp/tests/corpus/extra_templates.py --only-extra

They differ from the built-in templates on purpose: other phrasings and labels, HTML-only
bodies with character references and tags inside numbers, quoted-printable soft breaks
inside numbers, legacy charsets, forwarded messages (message/rfc822), semicolon CSV, TSV,
XLSX, DOCX, PDF, JSON and X12 837 attachments, and look-alike numbers that fail their
checks (which must not be reported).
"""
import datetime as dt
import io
import json
import zipfile
import zlib
from email.message import EmailMessage
from email.policy import SMTP

import phigen
from phigen import CONDITIONS, LABS, PLANS, PROCEDURES, ORGS, Draft

EXTRA_LABELS = {
    "dob": ["D.O.B.", "Birth date", "Date of birth", "Birthdate", "DOB", "Born"],
    "mrn": ["Medical Record #", "MRN#", "Chart #", "Med Rec No.", "Patient ID", "Record number"],
    "plan": ["Member #", "Subscriber ID", "Policy number", "Medicaid ID", "Insurance ID"],
    "ssn": ["Social Security No.", "SS#", "Soc. Sec. #", "Social security number", "SSN"],
    "phone": ["Cell", "Mobile", "Tel.", "Contact number", "Phone"],
}


def label(g, kind):
    return g.pick(EXTRA_LABELS[kind])


def dob_value(g):
    d = dt.date(1930, 1, 1) + dt.timedelta(days=g.r.randint(0, 33000))
    return g.pick([d.strftime("%m/%d/%Y"), d.strftime("%b %d, %Y").replace(" 0", " "), d.isoformat(),
                   d.strftime("%d %B %Y").lstrip("0"), f"{d.month}/{d.day}/{d.year}"])


def staff_sig(g):
    name, mail, dom = g.staff()
    org = g.pick(ORGS)
    phone = g.phone()
    return name, mail, dom, f"Best regards,\n{name}, RN\n{org}\nOffice: {phone}", phone


# ------------------------------------------------------------------ body templates

def discharge_summary_qp(g):
    """Plain text with quoted-printable soft breaks inside tokens, other labels."""
    d = Draft("phi")
    name, mail, dom, sig, office = staff_sig(g)
    pt = d.ent("PERSON_NAME", g.name())
    code, desc, meds = g.pick(CONDITIONS)
    d.ent("ICD10_CODE", code)
    dob = d.ent("DATE_OF_BIRTH", dob_value(g))
    mrn = d.ent("MRN", g.mrn())
    plan = d.ent("HEALTH_PLAN_ID", g.member_id())
    ssn = d.ent("US_SSN", g.ssn("dash"))
    d.ent("PHONE", office)
    d.sender, d.to = mail, g.staff()[1]
    d.subject = "Discharge summary"
    d.text = (f"Discharge summary for {pt}.\n\n"
              f"{label(g, 'dob')}: {dob}\n{label(g, 'mrn')} {mrn}\n{label(g, 'plan')}: {plan}\n"
              f"{label(g, 'ssn')}: {ssn}\n"
              f"Principal diagnosis: {desc} ({code}).\nDischarge medications: {', '.join(meds)}.\n\n{sig}\n")
    d.qp_trick = True
    return d


def html_only_results(g):
    """HTML-only body: character references, tags inside numbers, a table with headers."""
    d = Draft("phi")
    name, mail, dom, sig, office = staff_sig(g)
    pt = d.ent("PERSON_NAME", g.name())
    dob = d.ent("DATE_OF_BIRTH", g.dob())
    mbi = d.ent("MEDICARE_MBI", g.mbi())
    code, desc, meds = g.pick(CONDITIONS)
    d.ent("ICD10_CODE", code)
    lab, unit, lo, hi = g.pick(LABS)
    phone = d.ent("PHONE", g.phone())
    d.ent("PHONE", office)
    d.sender, d.to = mail, g.email(pt)
    d.subject = "Your results"
    split_mbi = mbi[:3] + "</b><b>" + mbi[3:]
    dob_html = dob.replace("/", "&#47;").replace("-", "&#8209;")
    phone_html = phone.replace("-", "<span>-</span>", 1)
    d.html = (f"<html><body><p>Dear&nbsp;{pt},</p><p>Your <i>{lab}</i> came back at {round(g.r.uniform(lo, hi), 1)} {unit}.</p>"
              f"<table><tr><th>Patient</th><th>Date of Birth</th><th>Medicare&nbsp;ID</th><th>Dx</th></tr>"
              f"<tr><td>{pt}</td><td>{dob_html}</td><td><b>{split_mbi}</b></td><td>{code}</td></tr></table>"
              f"<p>We reached you at {phone_html}.</p><p>{sig.replace(chr(10), '<br>')}</p></body></html>")
    d.custom = "html_only"
    return d


def forwarded_lab(g):
    """A lab result forwarded as an attached message/rfc822."""
    d = phigen.lab_results(g)
    inner = phigen.render(d, g, f"inner-{g.r.randint(1, 10**9)}")
    outer = Draft(d.verdict)
    outer.entities = d.entities
    name, mail, dom = g.staff()
    outer.sender, outer.to = mail, g.staff()[1]
    outer.subject = "Fwd: " + d.subject
    outer.text = "FYI, see the message below.\n"
    outer.custom = ("forward", inner)
    return outer


def latin1_intake(g):
    """An intake note in iso-8859-1 or windows-1252 with accented names."""
    d = Draft("phi")
    name, mail, dom = g.staff()
    first = g.pick(["José", "María", "Zoë", "André", "Renée", "Inés"])
    last = g.pick(["Núñez", "García", "Müller", "Gonçalves", "Pérez"])
    pt = d.ent("PERSON_NAME", f"{first} {last}")
    dob = d.ent("DATE_OF_BIRTH", g.dob())
    code, desc, meds = g.pick(CONDITIONS)
    d.ent("ICD10_CODE", code)
    phone = d.ent("PHONE", g.phone())
    d.sender, d.to = mail, g.staff()[1]
    d.subject = "Intake - new patient"
    d.text = (f"New patient intake - {pt}\nFecha de nacimiento / date of birth: {dob}\n"
              f"Diagnóstico: {desc}, ICD-10 {code}\nTeléfono: {phone}\n\n{name}\n")
    d.charset = g.pick(["iso-8859-1", "windows-1252"])
    return d


def shift_jis_referral(g):
    """A referral in Shift_JIS with fullwidth digits."""
    d = Draft("phi")
    name, mail, dom = g.staff()
    pt = d.ent("PERSON_NAME", g.name())
    dob = d.ent("DATE_OF_BIRTH", dt.date(1940 + g.r.randint(0, 60), g.r.randint(1, 12), g.r.randint(1, 28)).isoformat())
    code, desc, meds = g.pick(CONDITIONS)
    d.ent("ICD10_CODE", code)
    mrn = d.ent("MRN", f"{g.r.randint(0, 99999999):08d}")
    full = lambda s: "".join(chr(ord(c) + 0xFEE0) if "0" <= c <= "9" else c for c in s)
    d.sender, d.to = mail, g.staff()[1]
    d.subject = "紹介状"
    d.text = (f"患者名: {pt}\n生年月日 (DOB): {full(dob)}\nMRN: {full(mrn)}\n"
              f"診断 diagnosis: {code} {desc}\nよろしくお願いします。\n")
    d.charset = "shift_jis"
    return d


# ------------------------------------------------------------------ attachments

def semicolon_csv(g):
    d = Draft("phi")
    name, mail, dom = g.staff()
    rows = ["Patient Name;Birth Date;Medical Record #;Dx Code;Member ID"]
    for _ in range(g.r.randint(2, 5)):
        pt = d.ent("PERSON_NAME", g.name())
        dob = d.ent("DATE_OF_BIRTH", g.dob().replace(",", ""))
        mrn = d.ent("MRN", g.mrn())
        code = d.ent("ICD10_CODE", g.pick(CONDITIONS)[0])
        member = d.ent("HEALTH_PLAN_ID", g.member_id())
        rows.append(f"{pt};{dob};{mrn};{code};{member}")
    d.sender, d.to = mail, g.staff()[1]
    d.subject = "Outreach list"
    d.text = f"List attached.\n{name}\n"
    d.attachments.append(("outreach.csv", "text/csv", "\r\n".join(rows).encode()))
    return d


def tsv_export(g):
    d = Draft("pii")
    name, mail, dom = g.staff()
    rows = ["employee\tssn\tdate_of_birth\tcell"]
    for _ in range(g.r.randint(2, 4)):
        emp = d.ent("PERSON_NAME", g.name())
        ssn = d.ent("US_SSN", g.ssn(g.pick(["dash", "plain"])))
        dob = d.ent("DATE_OF_BIRTH", g.dob().replace(",", ""))
        cell = d.ent("PHONE", g.phone())
        rows.append(f"{emp}\t{ssn}\t{dob}\t{cell}")
    d.sender, d.to = mail, g.staff()[1]
    d.subject = "Benefits enrollment export"
    d.text = f"Export attached.\n{name}\n"
    d.attachments.append(("enrollment.tsv", "text/tab-separated-values", "\n".join(rows).encode()))
    return d


def xlsx_bytes(rows, date_cols=()):
    """A minimal XLSX: shared strings, one sheet, a date style for date columns."""
    strings, index = [], {}

    def sid(s):
        if s not in index:
            index[s] = len(strings)
            strings.append(s)
        return index[s]

    def col(i):
        return chr(ord("A") + i)

    sheet_rows = []
    for r, row in enumerate(rows, 1):
        cells = []
        for c, v in enumerate(row):
            ref = f"{col(c)}{r}"
            if isinstance(v, dt.date):
                serial = (v - dt.date(1899, 12, 30)).days
                cells.append(f'<c r="{ref}" s="1"><v>{serial}</v></c>')
            elif isinstance(v, int):
                cells.append(f'<c r="{ref}"><v>{v}</v></c>')
            else:
                cells.append(f'<c r="{ref}" t="s"><v>{sid(v)}</v></c>')
        sheet_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;")
    files = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "xl/workbook.xml": '<?xml version="1.0"?><workbook><sheets><sheet name="Sheet1" sheetId="1"/></sheets></workbook>',
        "xl/styles.xml": '<?xml version="1.0"?><styleSheet><numFmts count="1"><numFmt numFmtId="164" formatCode="mm/dd/yyyy"/></numFmts>'
                         '<cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>',
        "xl/sharedStrings.xml": '<?xml version="1.0"?><sst>' + "".join(f"<si><t>{esc(s)}</t></si>" for s in strings) + "</sst>",
        "xl/worksheets/sheet1.xml": '<?xml version="1.0"?><worksheet><sheetData>' + "".join(sheet_rows) + "</sheetData></worksheet>",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, content in files.items():
            z.writestr(n, content)
    return buf.getvalue()


def xlsx_roster(g):
    d = Draft("phi")
    name, mail, dom = g.staff()
    rows = [["Name", "DOB", "MRN", "Diagnosis", "NPI of PCP"]]
    for _ in range(g.r.randint(2, 5)):
        pt = d.ent("PERSON_NAME", g.name())
        born = dt.date(1930, 1, 1) + dt.timedelta(days=g.r.randint(0, 33000))
        d.ent("DATE_OF_BIRTH", born.isoformat())
        mrn = d.ent("MRN", f"{g.r.randint(10000000, 99999999)}")
        code = d.ent("ICD10_CODE", g.pick(CONDITIONS)[0])
        npi = d.ent("NPI", g.npi())
        rows.append([pt, born, int(mrn), code, int(npi)])
    d.sender, d.to = mail, g.staff()[1]
    d.subject = "Panel report"
    d.text = f"Spreadsheet attached.\n{name}\n"
    d.attachments.append(("panel.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx_bytes(rows)))
    return d


def docx_bytes(paragraphs, table=None):
    def run_split(text):
        # Word splits text into runs anywhere; split inside numbers on purpose
        mid = len(text) // 2
        return f"<w:r><w:t xml:space=\"preserve\">{text[:mid]}</w:t></w:r><w:r><w:t xml:space=\"preserve\">{text[mid:]}</w:t></w:r>"
    body = "".join(f"<w:p>{run_split(p)}</w:p>" for p in paragraphs)
    if table:
        rows = "".join("<w:tr>" + "".join(f"<w:tc><w:p>{run_split(c)}</w:p></w:tc>" for c in row) + "</w:tr>" for row in table)
        body += f"<w:tbl>{rows}</w:tbl>"
    doc = ('<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           f"<w:body>{body}</w:body></w:document>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("word/document.xml", doc)
    return buf.getvalue()


def docx_letter(g):
    d = Draft("phi")
    name, mail, dom = g.staff()
    pt = d.ent("PERSON_NAME", g.name())
    dob = d.ent("DATE_OF_BIRTH", g.dob())
    code, desc, meds = g.pick(CONDITIONS)
    d.ent("ICD10_CODE", code)
    plan = d.ent("HEALTH_PLAN_ID", g.member_id())
    ndc = d.ent("NDC_CODE", g.ndc())
    paragraphs = [f"RE: {pt}", f"This letter supports prior authorization for {meds[0]}.",
                  f"The patient has {desc}."]
    table = [["Field", "Value"], ["Date of birth", dob], ["Subscriber ID", plan], ["ICD-10", code], ["NDC", ndc]]
    d.sender, d.to = mail, f"pa@{g.pick(phigen.DOMAINS)}"
    d.subject = "Prior authorization letter"
    d.text = f"Please see the attached letter.\n{name}\n"
    d.attachments.append(("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                          docx_bytes(paragraphs, table)))
    return d


def pdf_bytes(lines):
    def esc(s):
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content = "BT /F1 11 Tf 72 740 Td 14 TL\n" + "".join(f"({esc(l)}) Tj T*\n" for l in lines) + "ET"
    stream = zlib.compress(content.encode("latin-1"))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def pdf_lab_report(g):
    d = Draft("phi")
    name, mail, dom = g.staff()
    pt = d.ent("PERSON_NAME", g.name())
    dob = d.ent("DATE_OF_BIRTH", g.dob())
    mrn = d.ent("MRN", g.mrn())
    lab, unit, lo, hi = g.pick(LABS)
    npi = d.ent("NPI", g.npi())
    lines = ["LABORATORY REPORT", f"Patient: {pt}", f"DOB: {dob}", f"MRN: {mrn}",
             f"{lab}: {round(g.r.uniform(lo, hi), 1)} {unit}", f"Ordering provider NPI: {npi}"]
    d.sender, d.to = mail, g.staff()[1]
    d.subject = "Lab report"
    d.text = f"Report attached.\n{name}\n"
    d.attachments.append(("report.pdf", "application/pdf", pdf_bytes(lines)))
    return d


def json_fhir(g):
    d = Draft("phi")
    name, mail, dom = g.staff()
    pt = g.name()
    d.ent("PERSON_NAME", pt)
    born = dt.date(1930, 1, 1) + dt.timedelta(days=g.r.randint(0, 33000))
    d.ent("DATE_OF_BIRTH", born.isoformat())
    mrn = d.ent("MRN", f"{g.r.randint(10000000, 99999999)}")
    code, desc, meds = g.pick(CONDITIONS)
    d.ent("ICD10_CODE", code)
    phone = d.ent("PHONE", g.phone())
    doc = {"resourceType": "Bundle", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"text": pt}], "birthDate": born.isoformat(),
                      "identifier": [{"type": "MRN", "value": mrn}], "telecom": [{"system": "phone", "value": phone}]}},
        {"resource": {"resourceType": "Condition", "code": {"coding": [{"system": "icd-10-cm", "code": code, "display": desc}]}}}]}
    d.sender, d.to = mail, f"interfaces@{g.pick(phigen.DOMAINS)}"
    d.subject = "FHIR export"
    d.text = "Export attached.\n"
    d.attachments.append(("export.json", "application/json", json.dumps(doc, indent=1).encode()))
    return d


def x12_claim(g):
    """An X12 837P claim: undotted ICD-10 codes, an 11-digit NDC, CCYYMMDD birth date."""
    d = Draft("phi")
    name, mail, dom = g.staff()
    first, last = g.name().split()
    d.ent("PERSON_NAME", f"{first} {last}")
    born = dt.date(1930, 1, 1) + dt.timedelta(days=g.r.randint(0, 33000))
    dob = d.ent("DATE_OF_BIRTH", born.strftime("%Y%m%d"))
    member = d.ent("HEALTH_PLAN_ID", g.member_id())
    code1 = d.ent("ICD10_CODE", g.pick(CONDITIONS)[0].replace(".", ""))
    code2 = g.pick(CONDITIONS)[0].replace(".", "")
    if code2 != code1:
        d.ent("ICD10_CODE", code2)
    npi = d.ent("NPI", g.npi())
    ndc = d.ent("NDC_CODE", f"{g.r.randint(0, 99999):05d}{g.r.randint(0, 9999):04d}{g.r.randint(0, 99):02d}")
    segs = ["ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *260101*1200*^*00501*000000001*0*P*:",
            "GS*HC*SUBMITTER*RECEIVER*20260101*1200*1*X*005010X222A1", "ST*837*0001*005010X222A1",
            f"NM1*85*2*{g.pick(ORGS).upper()}*****XX*{npi}",
            f"NM1*IL*1*{last.upper()}*{first.upper()}****MI*{member}",
            f"DMG*D8*{dob}*{g.pick(['M', 'F'])}",
            f"CLM*{g.r.randint(10000, 99999)}*{g.r.randint(50, 900)}***11:B:1*Y*A*Y*Y",
            f"HI*ABK:{code1}*ABF:{code2}",
            f"SV1*HC:99213*{g.r.randint(50, 300)}*UN*1***1",
            f"LIN**N4*{ndc}", "SE*10*0001", "GE*1*1", "IEA*1*000000001"]
    d.sender, d.to = mail, f"claims@{g.pick(phigen.DOMAINS)}"
    d.subject = "837 batch"
    d.text = "Claim file attached.\n"
    d.attachments.append(("claim.837", "application/edi-x12", "~\n".join(segs).encode() + b"~\n"))
    return d


# ------------------------------------------------------------------ clean look-alikes

def lookalike_invoice(g):
    """Numbers shaped like identifiers that fail their checks, and business references."""
    d = Draft("clean")
    name, mail, dom, sig, office = staff_sig(g)
    d.ent("PHONE", office)
    bad_npi = g.npi(valid=False)
    bad_card = g.card(valid=False)
    bad_ssn = g.bad_ssn()
    letters = "SLOIBZ"
    bad_mbi = f"{g.r.randint(1, 9)}{g.pick(letters)}{g.r.randint(0, 9)}{g.r.randint(0, 9)}-{g.pick('ACDEFG')}{g.r.randint(0, 9)}{g.r.randint(0, 9)}-{g.pick('ACDEFG')}{g.pick('ACDEFG')}{g.r.randint(10, 99)}"
    dea = g.dea("Smith")
    bad_dea = dea[:-1] + str((int(dea[-1]) + g.r.randint(1, 9)) % 10)
    d.sender, d.to = mail, g.staff()[1]
    d.subject = f"Vendor statement {g.reference_numbers()}"
    d.text = (f"Statement for account {g.r.randint(10**6, 10**7 - 1)}.\n"
              f"Vendor ID {bad_npi}, payment ref {bad_card}, tax form test value {bad_ssn}.\n"
              f"Legacy key {bad_mbi}; registration {bad_dea}.\n"
              f"Catalog items E11-{g.r.randint(100, 999)}, J45X-{g.r.randint(10, 99)}, route I-10, "
              f"call 1-{g.r.randint(100, 199)}-555-0100 for the (old) helpline.\n\n{sig}\n")
    return d


def staff_health_news(g):
    """Staff talk about conditions and procedures, with staff names: no patient."""
    d = Draft("clean")
    name, mail, dom, sig, office = staff_sig(g)
    d.ent("PHONE", office)
    other = g.name()
    cond = g.pick(CONDITIONS)[1]
    proc = g.pick(PROCEDURES)
    d.sender, d.to = mail, f"all-staff@{dom}"
    d.subject = "Education series"
    d.text = (f"Team,\n\nDr. {other} will present new guidance on {cond} and {proc} scheduling on "
              f"{g.future_date()} in room 4B. The {g.pick(['MRI', 'CT'])} suite moves to the second floor.\n\n{sig}\n")
    return d


TEMPLATES = [(discharge_summary_qp, 3), (html_only_results, 3), (forwarded_lab, 2), (latin1_intake, 2),
             (shift_jis_referral, 1), (semicolon_csv, 2), (tsv_export, 2), (xlsx_roster, 2), (docx_letter, 2),
             (pdf_lab_report, 2), (json_fhir, 1), (x12_claim, 2), (lookalike_invoice, 3), (staff_health_news, 2)]


def render_extra(d, g, msgid):
    custom = getattr(d, "custom", None)
    if custom is None:
        return None
    m = EmailMessage()
    m["From"] = d.sender
    m["To"] = d.to
    m["Subject"] = d.subject
    m["Date"] = "Tue, 24 Nov 2026 10:%02d:00 -0500" % g.r.randint(0, 59)
    m["Message-ID"] = f"<{msgid}@corpus.invalid>"
    if custom == "html_only":
        m.set_content(d.html, subtype="html", cte=g.pick(["quoted-printable", "base64"]))
        return m.as_bytes(policy=SMTP)
    if isinstance(custom, tuple) and custom[0] == "forward":
        m.set_content(d.text)
        inner = EmailMessage()
        from email import message_from_bytes
        from email.policy import default
        m.add_attachment(message_from_bytes(custom[1], policy=default))
        return m.as_bytes(policy=SMTP)
    return None
