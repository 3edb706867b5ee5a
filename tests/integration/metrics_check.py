#!/usr/bin/env python3
"""Strict check of a Prometheus text exposition (format 0.0.4) and a reader of its values.

usage: metrics_check.py FILE                 check FILE; prints each fault, exit 1 if any
       metrics_check.py FILE get SERIES...   print the value of each series, one a line
                                             (SERIES as written: name or name{a="b",...}); a
                                             series that is not there is an error (exit 1)
       metrics_check.py FILE sum NAME        the sum of every series of NAME

The check: every line is a # HELP, a # TYPE or a sample; each family has exactly one HELP
and one TYPE, both before its samples, and its samples come together; sample names belong
to the family (name, or name_bucket/_sum/_count for a histogram); labels are well-formed and
unique per series; counters are named *_total and their values are whole and >= 0, and no
other family has the counter's name without _total (OpenMetrics would read both as one);
histograms measure time, so they are named *_seconds; every
histogram series has cumulative buckets in ascending le order ending with le="+Inf", and
_count equal to the +Inf bucket. The file ends with a line feed.
"""
import math
import re
import sys

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*'
VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r'^(' + NAME + r')(?:\{((?:' + LABEL + '=' + VALUE + r',)*(?:' + LABEL +
                    '=' + VALUE + r')?)\})? (\S+)(?: (-?[0-9]+))?$')
PAIR = re.compile('(' + LABEL + ')=(' + VALUE + ')')
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}


def number(s):
    if s in ('+Inf', '-Inf', 'NaN'):
        return float(s.replace('Inf', 'inf').replace('NaN', 'nan'))
    if not re.fullmatch(r'[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?', s):
        raise ValueError(s)
    return float(s)


def parse(text):
    faults, fams, order, samples = [], {}, [], {}
    if not text.endswith('\n'):
        faults.append('the text does not end with a line feed')
    current, closed = None, set()
    for n, line in enumerate(text.split('\n')[:-1], 1):
        if line.startswith('# HELP ') or line.startswith('# TYPE '):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(' ')
            if not re.fullmatch(NAME, name):
                faults.append('line %d: bad family name %r' % (n, name))
                continue
            f = fams.setdefault(name, {'help': None, 'type': None, 'samples': 0})
            if name not in order:
                order.append(name)
            if f['samples']:
                faults.append('line %d: %s of %s after its samples' % (n, kind, name))
            if kind == 'HELP':
                if f['help'] is not None:
                    faults.append('line %d: second HELP of %s' % (n, name))
                if re.search(r'\\[^\\n]|\\$', arg):
                    faults.append('line %d: bad escape in HELP' % n)
                f['help'] = arg
            else:
                if f['type'] is not None:
                    faults.append('line %d: second TYPE of %s' % (n, name))
                if arg not in TYPES:
                    faults.append('line %d: unknown type %r' % (n, arg))
                f['type'] = arg
            if current is not None and current != name:
                closed.add(current)
            current = name
            continue
        if line.startswith('#') or line == '':
            faults.append('line %d: not a HELP, TYPE or sample line: %r' % (n, line))
            continue
        m = SAMPLE.match(line)
        if not m:
            faults.append('line %d: malformed sample %r' % (n, line))
            continue
        name, labels, value = m.group(1), m.group(2) or '', m.group(3)
        try:
            v = number(value)
        except ValueError:
            faults.append('line %d: bad value %r' % (n, value))
            continue
        pairs = PAIR.findall(labels)
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            faults.append('line %d: a label twice' % n)
        fam = None
        for cand in (name, re.sub('_(bucket|sum|count)$', '', name)):
            if cand in fams and (cand == name or fams[cand]['type'] == 'histogram'):
                fam = cand
                break
        if fam is None:
            faults.append('line %d: sample %s has no HELP and TYPE before it' % (n, name))
            continue
        if fam in closed:
            faults.append('line %d: samples of %s are not together' % (n, fam))
        if current != fam:
            faults.append('line %d: sample of %s under the HELP/TYPE of %s' % (n, fam, current))
        fams[fam]['samples'] += 1
        key = name + '{' + ','.join('%s=%s' % p for p in pairs) + '}'
        if key in samples:
            faults.append('line %d: series %s twice' % (n, key))
        samples[key] = v
        t = fams[fam]['type']
        if t == 'counter' and (not name.endswith('_total') or v < 0 or v != math.floor(v)):
            faults.append('line %d: counter %s must be *_total, whole and >= 0' % (n, name))
    for name in order:
        f = fams[name]
        if f['help'] is None or f['type'] is None:
            faults.append('family %s lacks HELP or TYPE' % name)
        if f['type'] == 'histogram':
            faults += check_hist(name, samples)
            if not name.endswith('_seconds'):
                faults.append('histogram %s must be in seconds (*_seconds)' % name)
        if f['type'] == 'counter' and name[:-len('_total')] in fams:
            faults.append('family %s clashes with counter %s (OpenMetrics names a counter '
                          'without _total)' % (name[:-len('_total')], name))
    return faults, samples


def check_hist(name, samples):
    faults, series = [], {}
    for key, v in samples.items():
        m = re.match(re.escape(name) + r'_(bucket|sum|count)\{(.*)\}$', key)
        if not m:
            continue
        pairs = PAIR.findall(m.group(2))
        le = [x for k, x in pairs if k == 'le']
        rest = ','.join('%s=%s' % p for p in pairs if p[0] != 'le')
        s = series.setdefault(rest, {'buckets': [], 'sum': None, 'count': None})
        if m.group(1) == 'bucket':
            if len(le) != 1:
                faults.append('%s: a bucket without le' % key)
                continue
            s['buckets'].append((number(le[0].strip('"')), v))
        elif le:
            faults.append('%s: le on _sum or _count' % key)
        else:
            s[m.group(1)] = v
    for rest, s in series.items():
        b = s['buckets']
        where = '%s{%s}' % (name, rest)
        if not b or b[-1][0] != math.inf:
            faults.append('%s: no le="+Inf" bucket last' % where)
            continue
        if any(b[i][0] >= b[i + 1][0] or b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            faults.append('%s: buckets not ascending and cumulative' % where)
        if s['count'] is None or s['sum'] is None:
            faults.append('%s: _sum or _count missing' % where)
        elif s['count'] != b[-1][1]:
            faults.append('%s: _count %s differs from the +Inf bucket %s' % (where, s['count'], b[-1][1]))
    return faults


def canon(series):
    m = re.fullmatch('(' + NAME + r')(?:\{(.*)\})?', series)
    return m.group(1) + '{' + ','.join('%s=%s' % p for p in PAIR.findall(m.group(2) or '')) + '}'


def main():
    text = open(sys.argv[1], encoding='utf-8').read()
    faults, samples = parse(text)
    if len(sys.argv) == 2:
        for f in faults:
            print(f)
        return 1 if faults else 0
    if sys.argv[2] == 'sum':
        print('%g' % sum(v for k, v in samples.items() if k.startswith(sys.argv[3] + '{')))
        return 0
    rc = 0
    for s in sys.argv[3:]:
        k = canon(s)
        if k in samples:
            print('%g' % samples[k])
        else:
            print('missing')
            rc = 1
    return rc


if __name__ == '__main__':
    sys.exit(main())
