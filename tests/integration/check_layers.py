#!/usr/bin/env python3
"""check_layers - the dependency rule of ARCHITECTURE.md, checked on the source tree (TAP).

Folders have levels: dimecore 0, daemonlib 1, keyvault / dmtp-relay / milter / account / client
2, tools 3. A file may include headers of its own folder and of lower levels only; the four
daemons' folders and the user's client (dime-client) never include each other. Inside a folder, no header may be reached again from itself through
its includes (an include cycle). The daemons' executables are also checked with nm: none may
carry the keyvault's storage or sealing code (that is linked by dime-keyvaultd and dimectl
only), and neither may dime-client nor the account service (dime-accountd): it reaches the
vault over its socket.

usage: check_layers.py SOURCE-DIR [BINARY...] [+BINARY...]
A binary named with a leading + must carry that code (dime-keyvaultd: it shows the check sees
the symbols it looks for).
"""
import os
import re
import subprocess
import sys

LEVEL = {'dimecore': 0, 'daemonlib': 1, 'keyvault': 2, 'dmtp-relay': 2, 'milter': 2, 'account': 2,
         'client': 2, 'tools': 3}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# what only the keyvault's own library defines (keyvault/kv_seal, kv_store*, kv_vault)
VAULT_SYMBOL = re.compile(r' [TtDdBbRr] (kv_seal|kv_open|kv_master_|kv_store_|kv_vault_|'
                          r'kv_secret_|kv_passphrase_|kv_check_secret_file)')

n = 0
failed = 0


def result(ok, what, detail=''):
    global n, failed
    n += 1
    print(('ok' if ok else 'not ok') + ' %d - %s' % (n, what))
    if not ok:
        failed += 1
        for line in detail.splitlines()[:20]:
            print('#   ' + line)


def main():
    top = sys.argv[1]
    where = {}    # header name -> folder
    includes = {}  # path relative to top -> included names
    for folder in LEVEL:
        for name in sorted(os.listdir(os.path.join(top, folder))):
            if not name.endswith(('.c', '.h')):
                continue
            rel = folder + '/' + name
            if name.endswith('.h'):
                where[name] = folder
            with open(os.path.join(top, rel), encoding='utf-8') as f:
                includes[rel] = INCLUDE.findall(f.read())
    wrong = []
    for rel, incs in sorted(includes.items()):
        folder = rel.split('/')[0]
        for inc in incs:
            target = where.get(inc)
            if target is None or target == folder:
                continue
            if LEVEL[target] >= LEVEL[folder]:
                wrong.append('%s includes %s/%s' % (rel, target, inc))
    result(not wrong, 'every folder includes only its own and lower folders', '\n'.join(wrong))

    cycles = []
    for folder in LEVEL:
        headers = {r: i for r, i in includes.items() if r.startswith(folder + '/') and
                   r.endswith('.h')}

        def reach(start):
            seen, todo = set(), [start]
            while todo:
                h = todo.pop()
                for inc in headers.get(folder + '/' + h, []):
                    if where.get(inc) == folder and inc not in seen:
                        seen.add(inc)
                        todo.append(inc)
            return seen
        for rel in headers:
            name = rel.split('/')[1]
            if name in reach(name):
                cycles.append(rel)
    result(not cycles, 'no header includes itself through other headers', '\n'.join(cycles))

    for arg in sys.argv[2:]:
        binary = arg.lstrip('+')
        out = subprocess.run(['nm', binary], capture_output=True, text=True, check=True).stdout
        found = [line for line in out.splitlines() if VAULT_SYMBOL.search(line)]
        if arg.startswith('+'):
            result(len(found) > 0, '%s carries the keyvault storage and sealing code'
                   % os.path.basename(binary))
        else:
            result(not found, '%s links no keyvault storage or sealing code'
                   % os.path.basename(binary), '\n'.join(found))
    print('1..%d' % n)
    return 1 if failed else 0


sys.exit(main())
