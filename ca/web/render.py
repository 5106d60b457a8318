"""The site as files: relative path -> bytes (pages from the Jinja2 templates, autoescaped, and
the downloads exactly as the CA signed them)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import jinja2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.web.site import NOTICE_LABELS, Site

TEMPLATES = Path(__file__).parent / "templates"
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_LABELS = {"notice": NOTICE_LABELS}


def pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _page(name: str, site: Site, root: str, **values: object) -> bytes:
    return _ENV.get_template(name).render(site=site, root=root, labels=_LABELS, **values).encode("utf-8")


def render(site: Site) -> dict[str, bytes]:
    files: dict[str, bytes] = {
        "index.html": _page("index.html", site, ""),
        "notices.html": _page("notices.html", site, ""),
        "cps.html": _page("cps.html", site, ""),
        "reports/index.html": _page("reports.html", site, "../"),
        "style.css": (TEMPLATES / "style.css").read_bytes(),
    }
    if site.practice is not None and site.practice.text is not None:
        files["practice-statement.txt"] = site.practice.text.encode("utf-8")
    for view in site.cas:
        files[f"ca/{view.slug}.html"] = _page("ca.html", site, "../", v=view)
        if view.arl is not None and view.arl.der is not None:
            files[view.arl.file] = view.arl.der
    for cert in site.certificates():
        files[f"certs/{cert.stem}.cer"] = cert.cert.der
        files[f"certs/{cert.stem}.pem"] = pem(cert.cert.der)
    for report in site.reports:
        header, *rows = list(csv.reader(io.StringIO(report.csv.decode("utf-8"))))
        files[f"reports/{report.month}.html"] = _page("report.html", site, "../", r=report, header=header, rows=rows)
        files[f"reports/{report.month}.csv"] = report.csv
        if report.time_stamp:
            files[f"reports/{report.month}.tsr"] = report.time_stamp
    return files
