#!/usr/bin/env python3
"""Data for tests/bench/search_bench.sh (Python 3 standard library only).

  search_data.py generate --scale S --out DIR
      Writes a deterministic (fixed seed) Italian population: Patients with a
      real-format codice fiscale, Encounters, Conditions, Observations (LOINC,
      UCUM), MedicationRequests and DiagnosticReports, as DIR/resources.copy
      (PostgreSQL COPY text rows: type, id, JSON), the search parameter files
      DIR/params/*.tsv and DIR/manifest.json. SCALE 1 = 100,000 Patients and
      about 1,000,000 Observations.

  search_data.py load --base URL --data DIR [--clients N] [--bundle-size B] [--method PUT|POST]
      PUTs every row of DIR/resources.copy through POST URL/fhir transaction
      Bundles of B entries, N clients at once over keep-alive connections;
      prints "resources seconds" on stdout.

  search_data.py check KIND VALUE... < searchset.json
      Checks that a searchset Bundle answers the benchmark's search KIND with
      those (URL-encoded) values correctly.
"""

import argparse
import datetime
import http.client
import json
import os
import queue
import random
import sys
import threading
import time
import unicodedata
import urllib.parse
import uuid

SEED = 20260101
CF_SYSTEM = "http://hl7.it/sid/codiceFiscale"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

# ---- reference data ------------------------------------------------------------

SURNAMES = [
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
    "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti",
    "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone",
    "Longo", "Gentile", "Martinelli", "Vitale", "Lombardo", "Serra", "Coppola", "De Santis", "D'Angelo",
    "Marchetti", "Parisi", "Villa", "Conte", "Ferraro", "Ferri", "Fabbri", "Bianco", "Marini", "Grasso",
    "Valentini", "Messina", "Sala", "De Angelis", "Gatti", "Pellegrini", "Palumbo", "Sanna", "Farina", "Rizzi",
    "Monti", "Cattaneo", "Morelli", "Amato", "Silvestri", "Mazza", "Testa", "Grassi", "Pellegrino", "Carbone",
    "Giuliani", "Benedetti", "Barone", "Rossetti", "Caputo", "Montanari", "Guerra", "Palmieri", "Bernardi",
    "Martino", "Fiore", "De Rosa", "Ferretti", "Bellini", "Basile", "Riva", "Donati", "Piras", "Vitali",
    "Battaglia", "Sartori", "Neri", "Costantini", "Milani", "Pagano", "Ruggiero", "Sorrentino", "D'Amico",
    "Orlando", "Negri", "Rossini", "Rosso", "Mantovani", "Marchi", "Cirillo", "Fumagalli", "Melis",
]
MALE = [
    "Marco", "Mario", "Luca", "Giuseppe", "Giovanni", "Antonio", "Francesco", "Alessandro", "Andrea", "Matteo",
    "Lorenzo", "Davide", "Stefano", "Paolo", "Roberto", "Salvatore", "Vincenzo", "Luigi", "Massimo", "Fabio",
    "Simone", "Federico", "Riccardo", "Gabriele", "Leonardo", "Tommaso", "Michele", "Daniele", "Angelo",
    "Niccolò", "Pietro", "Emanuele", "Claudio", "Carlo", "Franco", "Marcello", "Martino", "Giorgio",
]
FEMALE = [
    "Maria", "Anna", "Giulia", "Francesca", "Sara", "Laura", "Chiara", "Valentina", "Alessandra", "Elena",
    "Martina", "Giorgia", "Sofia", "Aurora", "Alice", "Federica", "Silvia", "Paola", "Roberta", "Rosa",
    "Angela", "Giovanna", "Lucia", "Teresa", "Marta", "Marina", "Caterina", "Elisa", "Barbara", "Simona",
    "Cristina", "Monica", "Daniela", "Beatrice", "Ginevra", "Emma", "Carla", "Margherita",
]
# (region, city, province, postal code, codice catastale, relative weight)
CITIES = [
    ("Lazio", "Roma", "RM", "00185", "H501", 14),
    ("Lombardia", "Milano", "MI", "20121", "F205", 12),
    ("Lombardia", "Bergamo", "BG", "24121", "A794", 3),
    ("Lombardia", "Brescia", "BS", "25121", "B157", 3),
    ("Campania", "Napoli", "NA", "80133", "F839", 9),
    ("Campania", "Salerno", "SA", "84121", "H703", 3),
    ("Piemonte", "Torino", "TO", "10121", "L219", 7),
    ("Sicilia", "Palermo", "PA", "90133", "G273", 6),
    ("Sicilia", "Catania", "CT", "95121", "C351", 4),
    ("Veneto", "Venezia", "VE", "30121", "L736", 3),
    ("Veneto", "Verona", "VR", "37121", "L781", 3),
    ("Veneto", "Padova", "PD", "35121", "G224", 3),
    ("Emilia-Romagna", "Bologna", "BO", "40121", "A944", 5),
    ("Toscana", "Firenze", "FI", "50122", "D612", 5),
    ("Puglia", "Bari", "BA", "70121", "A662", 5),
    ("Liguria", "Genova", "GE", "16121", "D969", 4),
    ("Sardegna", "Cagliari", "CA", "09124", "B354", 3),
]
STREETS = [
    "Via Roma", "Via Giuseppe Garibaldi", "Corso Vittorio Emanuele II", "Via Giuseppe Mazzini",
    "Via Dante Alighieri", "Piazza della Repubblica", "Via Giuseppe Verdi", "Via Cavour", "Viale Europa",
    "Via XX Settembre", "Via Guglielmo Marconi", "Via Giacomo Matteotti", "Via Aldo Moro", "Via della Libertà",
]
# LOINC code, display, UCUM unit, low, high, decimals, category
LOINC_CODES = [
    ("8867-4", "Heart rate", "/min", 50, 110, 0, "vital-signs"),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 100, 170, 0, "vital-signs"),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 60, 100, 0, "vital-signs"),
    ("8310-5", "Body temperature", "Cel", 35.8, 38.5, 1, "vital-signs"),
    ("29463-7", "Body weight", "kg", 45, 110, 1, "vital-signs"),
    ("8302-2", "Body height", "cm", 150, 195, 0, "vital-signs"),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 18, 35, 1, "vital-signs"),
    ("9279-1", "Respiratory rate", "/min", 12, 22, 0, "vital-signs"),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 92, 100, 0, "vital-signs"),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 180, 0, "laboratory"),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.5, 9.5, 1, "laboratory"),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 140, 280, 0, "laboratory"),
    ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 30, 90, 0, "laboratory"),
    ("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", "mg/dL", 60, 200, 0, "laboratory"),
    ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 50, 300, 0, "laboratory"),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.5, 1.8, 2, "laboratory"),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 10, 17.5, 1, "laboratory"),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 3.5, 12, 1, "laboratory"),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 140, 420, 0, "laboratory"),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.3, 5.3, 1, "laboratory"),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 133, 147, 0, "laboratory"),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 8, 70, 0, "laboratory"),
]
LAB_CODES = [c for c in LOINC_CODES if c[6] == "laboratory"]
# Report panels (LOINC) and the lab codes they group
PANELS = [
    ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma",
     {"2345-7", "2160-0", "2823-3", "2951-2", "1742-6"}),
    ("57698-3", "Lipid panel with direct LDL - Serum or Plasma", {"2093-3", "2085-9", "13457-7", "2571-8"}),
    ("58410-2", "CBC panel - Blood by Automated count", {"718-7", "6690-2", "777-3"}),
]
CONDITIONS = [  # ICD-9-CM, as Italian discharge records use it
    ("250.00", "Diabete mellito tipo II senza complicazioni"),
    ("401.9", "Ipertensione essenziale non specificata"),
    ("272.4", "Iperlipidemia altra e non specificata"),
    ("496", "Ostruzioni croniche delle vie respiratorie"),
    ("428.0", "Insufficienza cardiaca congestizia"),
    ("493.90", "Asma non specificata"),
    ("244.9", "Ipotiroidismo non specificato"),
    ("585.9", "Malattia renale cronica non specificata"),
    ("427.31", "Fibrillazione atriale"),
    ("311", "Disturbo depressivo non classificato altrove"),
]
MEDICATIONS = [  # ATC
    ("A10BA02", "metformina", "500 mg due volte al giorno"),
    ("C09AA05", "ramipril", "5 mg una volta al giorno"),
    ("C10AA05", "atorvastatina", "20 mg la sera"),
    ("B01AC06", "acido acetilsalicilico", "100 mg una volta al giorno"),
    ("C07AB07", "bisoprololo", "2,5 mg una volta al giorno"),
    ("H03AA01", "levotiroxina sodica", "75 mcg a digiuno"),
    ("R03AK06", "salmeterolo e fluticasone", "1 inalazione due volte al giorno"),
    ("N06AB06", "sertralina", "50 mg una volta al giorno"),
    ("A02BC01", "omeprazolo", "20 mg prima di colazione"),
    ("C03CA01", "furosemide", "25 mg al mattino"),
]

# ---- codice fiscale ---------------------------------------------------------------

MONTHS = "ABCDEHLMPRST"
ODD = {ch: v for ch, v in zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                [1, 0, 5, 7, 9, 13, 15, 17, 19, 21,
                                 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16,
                                 10, 22, 25, 24, 23])}
EVEN = {ch: (int(ch) if ch.isdigit() else ord(ch) - ord("A")) for ch in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
OMOCODIA = "LMNPQRSTUV"  # replaces digits 0-9 when two people share a code
OMOCODIA_POSITIONS = [14, 13, 12, 10, 9, 7, 6]  # right to left


def ascii_letters(s):
    s = unicodedata.normalize("NFKD", s)
    return "".join(ch for ch in s.upper() if "A" <= ch <= "Z")


def cf_part(name, given):
    s = ascii_letters(name)
    cons = [c for c in s if c not in "AEIOU"]
    vows = [c for c in s if c in "AEIOU"]
    if given and len(cons) >= 4:
        return cons[0] + cons[2] + cons[3]
    return ("".join(cons + vows) + "XXX")[:3]


def cf_check(first15):
    total = sum(ODD[c] if i % 2 == 0 else EVEN[c] for i, c in enumerate(first15))
    return chr(ord("A") + total % 26)


def codice_fiscale(family, given, birth, female, catastale):
    day = birth.day + (40 if female else 0)
    body = (cf_part(family, False) + cf_part(given, True) + "%02d" % (birth.year % 100) + MONTHS[birth.month - 1]
            + "%02d" % day + catastale)
    return body + cf_check(body)


def omocodia(cf, level):
    """The level-th substitute code (digits replaced from the right)."""
    chars = list(cf[:15])
    for pos in OMOCODIA_POSITIONS[:level]:
        chars[pos] = OMOCODIA[int(chars[pos])]
    body = "".join(chars)
    return body + cf_check(body)

# ---- generation ---------------------------------------------------------------------


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def rome_time(dt, offset_of=None):
    """ISO 8601 with the Europe/Rome offset (summer time approximated Apr-Oct),
    taken from `offset_of` when given, so that an end keeps its start's offset
    and never comes before it."""
    ref = offset_of or dt
    offset = "+02:00" if 4 <= ref.month <= 10 else "+01:00"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + offset


def pick_weighted(rng, items, weights):
    return rng.choices(items, weights=weights, k=1)[0]


def generate(scale, out):
    rng = random.Random(SEED)
    n_patients = max(10, int(round(100000 * scale)))
    os.makedirs(os.path.join(out, "params"), exist_ok=True)
    start_2018 = datetime.datetime(2018, 1, 1)
    span_s = int((datetime.datetime(2026, 11, 1) - start_2018).total_seconds())
    cutoff = datetime.datetime(2023, 1, 1)
    city_weights = [c[5] for c in CITIES]
    seen_cf = set()
    counts = {}
    n_obs = n_enc = n_cond = n_med = n_dr = 0
    # parameter pools
    cf_pool, name_pool, subj_pool, enc_pool = [], set(), [], []
    rows = open(os.path.join(out, "resources.copy.tmp"), "w", encoding="utf-8")

    def emit(res):
        counts[res["resourceType"]] = counts.get(res["resourceType"], 0) + 1
        rows.write(res["resourceType"] + "\t" + res["id"] + "\t" + dumps(res).replace("\\", "\\\\") + "\n")

    for p in range(n_patients):
        pid = "pat-%06d" % p
        female = rng.random() < 0.51
        given = rng.choice(FEMALE if female else MALE)
        second = rng.choice(FEMALE if female else MALE) if rng.random() < 0.12 else None
        family = rng.choice(SURNAMES)
        birth = datetime.date(1935, 1, 1) + datetime.timedelta(days=rng.randrange(0, 365 * 85))
        home = pick_weighted(rng, CITIES, city_weights)
        born = home if rng.random() < 0.8 else pick_weighted(rng, CITIES, city_weights)
        cf = codice_fiscale(family, given + (second or ""), birth, female, born[4])
        level = 0
        while cf in seen_cf:
            level += 1
            cf = omocodia(cf, level)
        seen_cf.add(cf)
        names = [given] + ([second] if second else [])
        patient = {
            "resourceType": "Patient", "id": pid,
            "identifier": [{"use": "official", "system": CF_SYSTEM, "value": cf}],
            "active": True,
            "name": [{"use": "official", "family": family, "given": names}],
            "telecom": [{"system": "phone", "value": "+39 3%02d %07d" % (rng.randrange(20, 99), rng.randrange(10 ** 7)),
                         "use": "mobile"}],
            "gender": "female" if female else "male",
            "birthDate": birth.isoformat(),
            "address": [{"use": "home", "type": "physical",
                         "line": ["%s %d" % (rng.choice(STREETS), rng.randrange(1, 200))],
                         "city": home[1], "district": home[2], "state": home[0], "postalCode": home[3],
                         "country": "IT"}],
        }
        emit(patient)
        if len(cf_pool) < 20000:
            cf_pool.append(cf)
        fam_l, giv_l = ascii_letters(family).lower(), ascii_letters(given).lower()
        if family.isalpha():
            name_pool.add((fam_l[:4] if len(fam_l) > 4 and rng.random() < 0.5 else fam_l[:3],
                           giv_l[:3] if rng.random() < 0.7 else giv_l[:2]))
        subject = {"reference": "Patient/" + pid, "display": "%s %s" % (" ".join(names), family)}

        # encounters: 1-3 ambulatory visits or admissions
        encounters = []
        for _ in range(rng.randint(1, 3)):
            eid = "enc-%07d" % n_enc
            n_enc += 1
            t0 = start_2018 + datetime.timedelta(seconds=rng.randrange(span_s))
            t0 = t0.replace(minute=(t0.minute // 15) * 15, second=0)
            inpatient = rng.random() < 0.2
            t1 = t0 + (datetime.timedelta(days=rng.randint(1, 9)) if inpatient else datetime.timedelta(minutes=30))
            emit({
                "resourceType": "Encounter", "id": eid, "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                          "code": "IMP" if inpatient else "AMB",
                          "display": "inpatient encounter" if inpatient else "ambulatory"},
                "subject": subject,
                "period": {"start": rome_time(t0), "end": rome_time(t1, offset_of=t0)},
                "serviceProvider": {"display": "ASL %s" % home[1]},
            })
            encounters.append((eid, t0))

        # observations: 6-15 per patient (10.5 on average: 1.05M at SCALE 1)
        obs_ids = []
        for _ in range(rng.randint(6, 15)):
            code = rng.choice(LOINC_CODES)
            oid = "obs-%08d" % n_obs
            n_obs += 1
            if rng.random() < 0.7:
                enc = rng.choice(encounters)
                t = enc[1] + datetime.timedelta(minutes=rng.randrange(0, 30))
            else:
                enc = None
                t = start_2018 + datetime.timedelta(seconds=rng.randrange(span_s))
            t = t.replace(second=0)
            value = round(rng.uniform(code[3], code[4]), code[5])
            if code[5] == 0:
                value = int(value)
            obs = {
                "resourceType": "Observation", "id": oid, "status": "final",
                "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code[6],
                    "display": "Vital Signs" if code[6] == "vital-signs" else "Laboratory"}]}],
                "code": {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}], "text": code[1]},
                "subject": {"reference": "Patient/" + pid},
                "effectiveDateTime": rome_time(t),
                "valueQuantity": {"value": value, "unit": code[2], "system": UCUM, "code": code[2]},
            }
            if enc:
                obs["encounter"] = {"reference": "Encounter/" + enc[0]}
            emit(obs)
            obs_ids.append((oid, code[0], t))
            if t >= cutoff and len(subj_pool) < 20000 and rng.random() < 0.3:
                subj_pool.append((pid, code[0]))
        if len(enc_pool) < 20000:
            enc_pool.append(pid)

        # conditions: 0-2
        for _ in range(rng.choice([0, 1, 1, 2])):
            cid = "cond-%07d" % n_cond
            n_cond += 1
            c = rng.choice(CONDITIONS)
            onset = start_2018 + datetime.timedelta(seconds=rng.randrange(span_s))
            emit({
                "resourceType": "Condition", "id": cid,
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "active"}]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                          "code": "encounter-diagnosis"}]}],
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-9-cm", "code": c[0], "display": c[1]}],
                         "text": c[1]},
                "subject": {"reference": "Patient/" + pid},
                "encounter": {"reference": "Encounter/" + rng.choice(encounters)[0]},
                "onsetDateTime": rome_time(onset.replace(second=0)),
                "recordedDate": rome_time(onset.replace(second=0)),
            })

        # medication requests: 0-2
        for _ in range(rng.choice([0, 1, 1, 2])):
            mid = "med-%07d" % n_med
            n_med += 1
            m = rng.choice(MEDICATIONS)
            when = start_2018 + datetime.timedelta(seconds=rng.randrange(span_s))
            emit({
                "resourceType": "MedicationRequest", "id": mid, "status": "active", "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": m[0],
                                                          "display": m[1]}], "text": m[1]},
                "subject": {"reference": "Patient/" + pid},
                "authoredOn": rome_time(when.replace(second=0)),
                "dosageInstruction": [{"text": m[2]}],
            })

        # diagnostic reports: half the patients, grouping their lab results of one panel
        if rng.random() < 0.5:
            panel = rng.choice(PANELS)
            results = [o for o in obs_ids if o[1] in panel[2]]
            if results:
                did = "dr-%07d" % n_dr
                n_dr += 1
                latest = max(o[2] for o in results)
                emit({
                    "resourceType": "DiagnosticReport", "id": did, "status": "final",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                              "code": "LAB", "display": "Laboratory"}]}],
                    "code": {"coding": [{"system": LOINC, "code": panel[0], "display": panel[1]}], "text": panel[1]},
                    "subject": {"reference": "Patient/" + pid},
                    "effectiveDateTime": rome_time(latest),
                    "issued": rome_time(latest + datetime.timedelta(hours=rng.randint(2, 48))),
                    "result": [{"reference": "Observation/" + o[0]} for o in results],
                })

    rows.close()
    os.replace(os.path.join(out, "resources.copy.tmp"), os.path.join(out, "resources.copy"))

    def write_params(name, lines):
        with open(os.path.join(out, "params", name), "w", encoding="utf-8") as f:
            for line in lines:
                f.write("\t".join(urllib.parse.quote(x, safe="") for x in line) + "\n")

    prng = random.Random(SEED + 1)
    prng.shuffle(cf_pool)
    prng.shuffle(subj_pool)
    prng.shuffle(enc_pool)
    names = sorted(name_pool)
    prng.shuffle(names)
    write_params("identifier.tsv", [(cf,) for cf in cf_pool[:10000]])
    write_params("name.tsv", names[:10000])
    write_params("subject_code_date.tsv", subj_pool[:10000])
    write_params("code.tsv", [(c[0],) for c in LOINC_CODES])
    write_params("subject_identifier.tsv", [(cf,) for cf in cf_pool[:10000]])
    write_params("encounter_patient.tsv", [(p,) for p in enc_pool[:10000]])
    manifest = {"scale": scale, "seed": SEED, "resources": sum(counts.values()), "counts": counts}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    print(json.dumps(manifest, sort_keys=True))

# ---- loading ------------------------------------------------------------------------


def load(base, data, clients, bundle_size, method="PUT"):
    url = urllib.parse.urlsplit(base)
    work = queue.Queue(maxsize=clients * 4)
    errors = []
    done = [0]
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                   "Prefer": "return=minimal"}
        while True:
            item = work.get()
            if item is None:
                break
            n, body = item
            if errors:
                continue
            try:
                conn.request("POST", url.path.rstrip("/") + "/fhir", body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
                if resp.status != 200 or b'"transaction-response"' not in text:
                    errors.append("HTTP %d: %s" % (resp.status, text[:500].decode("utf-8", "replace")))
                    continue
                with lock:
                    done[0] += n
            except Exception as e:  # noqa: BLE001 - reported and fatal
                errors.append(repr(e))
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    total = 0
    last_report = start
    entries = []

    def flush():
        body = ('{"resourceType":"Bundle","type":"transaction","entry":[' + ",".join(entries) + "]}").encode()
        work.put((len(entries), body))
        entries.clear()

    with open(os.path.join(data, "resources.copy"), encoding="utf-8") as f:
        for line in f:
            if errors:
                break
            rtype, rid, content = line.rstrip("\n").split("\t", 2)
            content = content.replace("\\\\", "\\")
            if method == "POST":
                # creates: the server assigns the ids (references keep the generated ones)
                entries.append('{"fullUrl":"urn:uuid:%s","resource":%s,"request":{"method":"POST","url":"%s"}}' % (
                    uuid.uuid4(), content, rtype))
            else:
                entries.append('{"resource":%s,"request":{"method":"PUT","url":"%s/%s"}}' % (content, rtype, rid))
            total += 1
            if len(entries) == bundle_size:
                flush()
            now = time.monotonic()
            if now - last_report > 30:
                print("search_data: queued %d resources, %d stored, %.0f/s" % (
                    total, done[0], done[0] / (now - start)), file=sys.stderr, flush=True)
                last_report = now
    if entries and not errors:
        flush()
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    if errors:
        print("search_data: load failed: %s" % errors[0], file=sys.stderr)
        return 1
    if done[0] != total:
        print("search_data: only %d of %d resources stored" % (done[0], total), file=sys.stderr)
        return 1
    print("%d %.3f" % (total, elapsed))
    return 0

# ---- checking one search answer ---------------------------------------------------


def parse_instant(text):
    if len(text) == 10:
        text += "T00:00:00+00:00"
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def check(kind, values, body):
    """Exits non-zero unless `body` is a searchset Bundle that answers search
    `kind` with `values` correctly; prints a one-line summary."""
    values = [urllib.parse.unquote(v) for v in values]
    b = json.loads(body)
    if b.get("resourceType") != "Bundle" or b.get("type") != "searchset":
        raise SystemExit("not a searchset Bundle")
    entries = b.get("entry", [])
    matches = [e["resource"] for e in entries if e.get("search", {}).get("mode") == "match"]
    included = [e["resource"] for e in entries if e.get("search", {}).get("mode") == "include"]
    outcome = [e for e in entries if e.get("search", {}).get("mode") == "outcome"]

    def need(cond, what):
        if not cond:
            raise SystemExit("%s: %s" % (kind, what))

    need(not outcome, "the Bundle carries an OperationOutcome: %s" % json.dumps(outcome)[:300])
    need(matches, "no match")
    if kind == "identifier":
        need(len(matches) == 1, "%d matches for one codice fiscale" % len(matches))
        need(matches[0]["resourceType"] == "Patient", "not a Patient")
        need(any(i.get("system") == CF_SYSTEM and i.get("value") == values[0]
                 for i in matches[0].get("identifier", [])), "the Patient has another codice fiscale")
    elif kind == "name":
        for m in matches:
            need(m["resourceType"] == "Patient", "not a Patient")
            need(any(ascii_letters(n.get("family", "")).lower().startswith(values[0])
                     and any(ascii_letters(g).lower().startswith(values[1]) for g in n.get("given", []))
                     for n in m["name"]), "%s does not match the name prefixes" % json.dumps(m["name"]))
    elif kind == "subject_code_date":
        for m in matches:
            need(m["resourceType"] == "Observation", "not an Observation")
            need(m["subject"]["reference"] == "Patient/" + values[0], "another subject")
            need(any(c["system"] == LOINC and c["code"] == values[1] for c in m["code"]["coding"]), "another code")
            need(parse_instant(m["effectiveDateTime"]) >= parse_instant("2023-01-01T00:00:00+14:00"),
                 "effective before 2023: " + m["effectiveDateTime"])
    elif kind == "code_sort":
        need(len(matches) == 10, "%d matches, expected 10" % len(matches))
        dates = [parse_instant(m["effectiveDateTime"]) for m in matches]
        for m in matches:
            need(any(c["system"] == LOINC and c["code"] == values[0] for c in m["code"]["coding"]), "another code")
        need(dates == sorted(dates, reverse=True), "not sorted by date, newest first")
    elif kind == "subject_identifier":
        subjects = {m["subject"]["reference"] for m in matches}
        need(all(m["resourceType"] == "Observation" for m in matches), "not an Observation")
        need(len(subjects) == 1, "several subjects: %s" % sorted(subjects))
        need(6 <= len(matches) <= 15, "%d Observations for one Patient (6-15 generated)" % len(matches))
    elif kind == "encounter_revinclude":
        ids = set()
        for m in matches:
            need(m["resourceType"] == "Encounter", "not an Encounter")
            need(m["subject"]["reference"] == "Patient/" + values[0], "another subject")
            ids.add("Encounter/" + m["id"])
        for i in included:
            need(i["resourceType"] == "Observation", "an included %s" % i["resourceType"])
            need(i.get("encounter", {}).get("reference") in ids, "an included Observation of another Encounter")
    else:
        raise SystemExit("unknown check " + kind)
    first = matches[0]
    print("%d matches, %d included; first %s/%s" % (len(matches), len(included), first["resourceType"], first["id"]))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--scale", type=float, required=True)
    g.add_argument("--out", required=True)
    ld = sub.add_parser("load")
    ld.add_argument("--base", required=True)
    ld.add_argument("--data", required=True)
    ld.add_argument("--clients", type=int, default=4)
    ld.add_argument("--bundle-size", type=int, default=100)
    ld.add_argument("--method", choices=["PUT", "POST"], default="PUT")
    ck = sub.add_parser("check")
    ck.add_argument("kind")
    ck.add_argument("values", nargs="*")
    a = ap.parse_args()
    if a.cmd == "check":
        return check(a.kind, a.values, sys.stdin.buffer.read())
    if a.cmd == "generate":
        if a.scale <= 0:
            ap.error("--scale must be positive")
        generate(a.scale, a.out)
        return 0
    return load(a.base, a.data, a.clients, a.bundle_size, a.method)


if __name__ == "__main__":
    sys.exit(main())
