#!/usr/bin/env python3
"""Clinical documents as the national Gateway sends them, for
tests/bench/document_bench.sh.

  generate --documents N --entries E --out DIR
      DIR/envelopes.jsonl: one PUBLISH envelope per line (the Bundle in
      "jsonString"), each a lab report of E entries: the Patient, the
      laboratory Organization and the Practitioner as conditional PUTs
      (Patient?identifier=..., as the Gateway sends them; patients come back
      every few documents, laboratories and practitioners more often), a
      Specimen, E - 7 Observations, the DiagnosticReport, the Composition
      (LOINC 11502-2) and the DocumentReference, all POSTed with urn:uuid
      fullUrls and referring to each other by them.
      DIR/resources.copy: every entry's resource as a COPY row (res_type,
      res_id, content) for the raw PostgreSQL baseline.
  send --base URL --data DIR --clients C [--replace N]
      PUBLISHes every envelope (POST /v1/document/workflowinstanceid/{wii})
      from C concurrent clients; prints "documents entries seconds p50_ms
      p99_ms" once all have answered 201 (any other answer stops the run).
      With --replace N, REPLACEs the first N documents instead (PUT of the
      same envelope as operation REPLACE: the stored document's resources
      are deleted and the Bundle's are stored), expecting 200.
"""
import argparse
import http.client
import json
import os
import queue
import random
import sys
import threading
import time
import urllib.parse
import uuid

SEED = 20261127
CF_SYSTEM = "urn:oid:2.16.840.1.113883.2.9.4.3.2"
ORG_SYSTEM = "urn:oid:2.16.840.1.113883.2.9.4.1.2"
LOINC = "http://loinc.org"
TESTS = ["718-7", "789-8", "6690-2", "777-3", "2345-7", "2160-0", "3094-0", "2823-3", "2951-2", "1742-6",
         "1920-8", "2093-3", "2571-8", "2085-9", "13457-7", "4548-4", "3016-3", "14749-6"]
CONSONANTS = "BCDFGLMNPRSTVZ"


def fiscal_code(rng, n):
    # 16 characters shaped like a codice fiscale, unique per n
    return ("".join(rng.choice(CONSONANTS) for _ in range(6)) + "%02d" % rng.randrange(100) + "ABCDEHLMPRST"[n % 12] +
            "%02d" % (1 + n % 28) + "H%03d" % (n % 1000) + CONSONANTS[(n // 1000) % len(CONSONANTS)])


def document(rng, n, entries, patients, labs, practitioners):
    master = "2.16.840.1.113883.2.9.2.120.4.4^%d" % n
    p = rng.randrange(len(patients))
    cf, family, given = patients[p]
    lab = labs[rng.randrange(len(labs))]
    doc_cf, doc_family = practitioners[rng.randrange(len(practitioners))]
    out = []

    def add(rtype, resource, request):
        full = "urn:uuid:" + str(uuid.UUID(int=rng.getrandbits(128), version=4))
        resource = dict(resourceType=rtype, **resource)
        out.append({"fullUrl": full, "resource": resource, "request": request})
        return full

    patient = add("Patient", {"identifier": [{"system": CF_SYSTEM, "value": cf}],
                              "name": [{"family": family, "given": [given]}]},
                  {"method": "PUT", "url": "Patient?identifier=%s|%s" % (CF_SYSTEM, cf)})
    org = add("Organization", {"identifier": [{"system": ORG_SYSTEM, "value": lab[0]}], "name": lab[1]},
              {"method": "PUT", "url": "Organization?identifier=%s|%s" % (ORG_SYSTEM, lab[0])})
    author = add("Practitioner", {"identifier": [{"system": CF_SYSTEM, "value": doc_cf}],
                                  "name": [{"family": doc_family}]},
                 {"method": "PUT", "url": "Practitioner?identifier=%s|%s" % (CF_SYSTEM, doc_cf)})
    when = "2026-%02d-%02dT%02d:%02d:00+01:00" % (1 + n % 12, 1 + n % 28, 7 + n % 10, n % 60)
    specimen = add("Specimen", {"subject": {"reference": patient}, "collection": {"collectedDateTime": when}},
                   {"method": "POST", "url": "Specimen"})
    results = []
    for i in range(max(1, entries - 7)):
        results.append({"reference": add("Observation", {
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": TESTS[(n + i) % len(TESTS)]}]},
            "subject": {"reference": patient}, "effectiveDateTime": when, "specimen": {"reference": specimen},
            "performer": [{"reference": org}],
            "valueQuantity": {"value": round(rng.uniform(1, 300), 1), "unit": "mg/dL",
                              "system": "http://unitsofmeasure.org", "code": "mg/dL"}},
            {"method": "POST", "url": "Observation"})})
    report = add("DiagnosticReport", {"status": "final", "code": {"coding": [{"system": LOINC, "code": "11502-2"}]},
                                      "subject": {"reference": patient}, "effectiveDateTime": when, "issued": when,
                                      "performer": [{"reference": org}], "result": results},
                 {"method": "POST", "url": "DiagnosticReport"})
    composition = add("Composition", {
        "status": "final", "type": {"coding": [{"system": LOINC, "code": "11502-2"}]},
        "subject": {"reference": patient}, "date": when, "author": [{"reference": author}],
        "custodian": {"reference": org}, "title": "Referto di laboratorio",
        "section": [{"title": "Esami", "entry": [{"reference": report}]}]},
        {"method": "POST", "url": "Composition"})
    add("DocumentReference", {
        "status": "current", "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master},
        "type": {"coding": [{"system": LOINC, "code": "11502-2"}]},
        "category": [{"coding": [{"code": "REF"}]}], "subject": {"reference": patient}, "date": when,
        "author": [{"reference": author}], "custodian": {"reference": org},
        "content": [{"attachment": {"contentType": "application/pdf", "url": composition}}],
        "context": {"related": [{"reference": composition}]}},
        {"method": "POST", "url": "DocumentReference"})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": out}
    envelope = {"identifier": master, "operation": "PUBLISH",
                "jsonString": json.dumps(bundle, separators=(",", ":")), "priorityType": "NULL",
                "insertionDate": "2026-11-20T10:00:00Z"}
    return "wii-%d" % n, envelope, out


def generate(documents, entries, out, labs=20, practitioners=200):
    rng = random.Random(SEED)
    patients = [(fiscal_code(rng, i), rng.choice(["Rossi", "Russo", "Bianchi", "Romano", "Ricci"]),
                 rng.choice(["Mario", "Anna", "Luca", "Giulia", "Marco"])) for i in range(max(1, documents // 5))]
    labs = [("%06d" % (80100 + i), "Laboratorio %d" % i) for i in range(labs)]
    practitioners = [(fiscal_code(rng, 500000 + i), "Medico%d" % i) for i in range(practitioners)]
    os.makedirs(out, exist_ok=True)
    rows = 0
    with open(os.path.join(out, "envelopes.jsonl"), "w", encoding="utf-8") as env, \
            open(os.path.join(out, "resources.copy"), "w", encoding="utf-8") as copy:
        for n in range(documents):
            wii, envelope, entries_out = document(rng, n, entries, patients, labs, practitioners)
            env.write(json.dumps({"wii": wii, "envelope": envelope}, separators=(",", ":")) + "\n")
            for e in entries_out:
                text = json.dumps(e["resource"], separators=(",", ":")).replace("\\", "\\\\")
                copy.write("%s\t%s\t%s\n" % (e["resource"]["resourceType"], e["fullUrl"][9:], text))
                rows += 1
    print(json.dumps({"documents": documents, "entries": rows}))


def send(base, data, clients, replace=0):
    url = urllib.parse.urlsplit(base)
    method, expected = ("PUT", 200) if replace else ("POST", 201)
    docs = []
    with open(os.path.join(data, "envelopes.jsonl"), encoding="utf-8") as f:
        for line in f:
            if replace and len(docs) >= replace:
                break
            d = json.loads(line)
            if replace:
                d["envelope"]["operation"] = "REPLACE"
            docs.append((d["wii"], len(json.loads(d["envelope"]["jsonString"])["entry"]),
                         json.dumps(d["envelope"], separators=(",", ":")).encode()))
    work = queue.Queue()
    for d in docs:
        work.put(d)
    errors, latencies = [], []
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
        headers = {"Content-Type": "application/json"}
        mine = []
        while not errors:
            try:
                wii, _, body = work.get_nowait()
            except queue.Empty:
                break
            t0 = time.monotonic()
            try:
                conn.request(method, "/v1/document/workflowinstanceid/" + wii, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
            except Exception as e:  # noqa: BLE001 - reported and fatal
                errors.append(repr(e))
                break
            if resp.status != expected:
                errors.append("%s: HTTP %d: %s" % (wii, resp.status, text[:500].decode("utf-8", "replace")))
                break
            mine.append(time.monotonic() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    if errors:
        sys.exit("document_data.py send: " + errors[0])
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print("%d %d %.3f %.1f %.1f" % (len(docs), sum(d[1] for d in docs), seconds, pct(0.5), pct(0.99)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--documents", type=int, required=True)
    g.add_argument("--entries", type=int, default=20)
    g.add_argument("--labs", type=int, default=20, help="laboratories (Organizations) the documents come from")
    g.add_argument("--practitioners", type=int, default=200, help="practitioners who sign them")
    g.add_argument("--out", required=True)
    s = sub.add_parser("send")
    s.add_argument("--base", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--clients", type=int, default=8)
    s.add_argument("--replace", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "generate":
        generate(a.documents, a.entries, a.out, max(1, a.labs), max(1, a.practitioners))
    else:
        send(a.base, a.data, a.clients, a.replace)


if __name__ == "__main__":
    main()
