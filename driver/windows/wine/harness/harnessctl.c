/* harnessctl.exe SESSION: runs a session of the Wine run inside Wine.
 *
 * A session file holds steps, one a line (# starts a comment):
 *   cli ARGS... => EXPECT           run fltpolicy.exe ARGS (beside harnessctl.exe);
 *                                   EXPECT: ok (exit 0) | fail (exit != 0),
 *                                   optionally followed by "TEXT" the output must hold
 *   config [notadmin]               harness settings (harness.h HC_*)
 *   compat-if-failed ISSUE          only if the last cli step failed: from here on the harness
 *                                   rewrites IOCTL parameters into the windows-sys 0.61.2 layout
 *                                   (the workaround for ISSUE; remove it with the xfail)
 *   raw STEP                        STEP with the IRP exactly as Wine builds it (no workaround)
 *   workaround STEP                 STEP only while the workaround is active
 *   ops FILE                        run a scenario file (path relative to the session file)
 *   sleep MS
 *   wait-file PATH MS               until PATH exists and is not empty, at most MS ms
 * A scenario file holds operations (and may hold the steps above), each
 * operation with the status the requester must see:
 *   process PID PPID IMAGE [=> EXPECT]        process creation (IMAGE C:\...)
 *   exit PID                                  process exit
 *   create PID [key=value|flag]... PATH => EXPECT
 *       access=HEX  disp=supersede|open|create|open-if|overwrite|overwrite-if
 *       options=HEX (create options)  alloc=N  opflags=HEX  norm=PATH (normalized name)
 *       noname  fs=STATUS (the file system's answer)  as=NAME (names the file)
 *       user=SID (the requester's token; default HARNESS_DEFAULT_USER)
 *   read|write PID [len=N] [paging] [nocache] [fs=STATUS] [file=NAME] => EXPECT
 *   setinfo PID class=basic|rename|rename-ex|link|disposition|disposition-ex|eof
 *       [delete] [size=N] [target=PATH] [paging] [fs=STATUS] [file=NAME] => EXPECT
 *   cleanup PID [file=NAME]
 *   detach => EXPECT                          fltmc detach of the C: instance
 *   attach => EXPECT                          fltmc attach to C: again
 *   record ...                                an expected audit record (checked by run.sh)
 *   bug-record ... xfail=ISSUE                a record the driver writes only because of
 *                                             ISSUE (tolerated, not required; goes with the xfail)
 * PID "host" is the winedevice.exe hosting the driver (running before it loaded).
 * EXPECT is ok, denied, or an NTSTATUS in hex; a trailing "xfail=ISSUE" marks
 * an expectation known to fail until ISSUE is fixed. Without file=, an
 * operation uses the last file created.
 *
 * Every checked step prints one line:
 *   PASS|FAIL|XFAIL|XPASS FILE:LINE what: expected X, got Y
 * (XPASS, an xfail that passes, counts as a failure: remove the xfail).
 * Exit status: 0 when no FAIL/XPASS, 1 otherwise, 2 on a usage error.
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"

static HANDLE g_dev = INVALID_HANDLE_VALUE;
static int g_failures;
static int g_last_cli_failed;
static int g_compat;          /* the IOCTL-layout workaround is active */
static int g_notadmin;
static wchar_t g_exe_dir[MAX_PATH];

static void to_wide(unsigned short *out, const char *p, int device_path)
{
    const char *prefix = "\\Device\\HarddiskVolume1";
    int n = 0;
    if (device_path && (p[0] | 0x20) == 'c' && p[1] == ':') { while (*prefix) out[n++] = (unsigned short)*prefix++; p += 2; }
    while (*p && n < 258) out[n++] = (unsigned short)(unsigned char)*p++;
    out[n] = 0;
}

/* "ok" | "denied" | hex */
static int parse_status(const char *s, unsigned *out)
{
    char *end;
    if (!strcmp(s, "ok")) { *out = 0; return 1; }
    if (!strcmp(s, "denied")) { *out = 0xC0000022u; return 1; }
    *out = (unsigned)strtoul(s, &end, 16);
    return *end == 0 && end != s;
}

static void verdict(const char *where, const char *what, int passed, const char *xfail, const char *expected, const char *got)
{
    const char *word = passed ? (xfail ? "XPASS" : "PASS") : (xfail ? "XFAIL" : "FAIL");
    if ((!passed && !xfail) || (passed && xfail)) g_failures++;
    printf("%s %s %s: expected %s, got %s%s%s%s\n", word, where, what, expected, got, xfail ? " (" : "", xfail ? xfail : "", xfail ? ")" : "");
    fflush(stdout);
}

static int harness_op(struct harness_op *op, struct harness_result *r)
{
    DWORD got = 0;
    if (g_dev == INVALID_HANDLE_VALUE) {
        g_dev = CreateFileW(L"\\\\.\\FltHarness", GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (g_dev == INVALID_HANDLE_VALUE) { printf("FAIL open \\\\.\\FltHarness: error %lu\n", GetLastError()); g_failures++; return 0; }
    }
    if (!DeviceIoControl(g_dev, IOCTL_HARNESS_OP, op, sizeof(*op), r, sizeof(*r), &got, NULL)) return -(int)GetLastError();
    return 1;
}

/* Splits off " => EXPECT [xfail=X]" from line; returns the expectation part or NULL. */
static char *split_expect(char *line, char **xfail)
{
    char *arrow = strstr(line, " => "), *x;
    *xfail = NULL;
    if (!arrow) return NULL;
    *arrow = 0;
    arrow += 4;
    x = strstr(arrow, " xfail=");
    if (x) { *x = 0; *xfail = x + 7; }
    while (*arrow == ' ') arrow++;
    return arrow;
}

static struct { char name[32]; unsigned id; } g_named[64];
static unsigned g_last_id;
static unsigned file_named(const char *name)
{
    int i;
    for (i = 0; i < 64; i++) if (!strcmp(g_named[i].name, name)) return g_named[i].id;
    return 0;
}
static void name_file(const char *name, unsigned id)
{
    int i, free_slot = -1;
    for (i = 0; i < 64; i++) {
        if (!strcmp(g_named[i].name, name)) { g_named[i].id = id; return; }
        if (!g_named[i].name[0] && free_slot < 0) free_slot = i;
    }
    if (free_slot >= 0) { snprintf(g_named[free_slot].name, 32, "%s", name); g_named[free_slot].id = id; }
}

static const struct { const char *name; unsigned value; } dispositions[] = {
    { "supersede", 0 }, { "open", 1 }, { "create", 2 }, { "open-if", 3 }, { "overwrite", 4 }, { "overwrite-if", 5 },
};
static const struct { const char *name; unsigned value; } classes[] = {
    { "basic", 4 }, { "rename", 10 }, { "link", 11 }, { "disposition", 13 }, { "eof", 20 },
    { "disposition-ex", 64 }, { "rename-ex", 65 },
};

static void run_scenario(const wchar_t *path, const char *label);

/* One scenario line. */
static void scenario_line(char *line, const char *where)
{
    struct harness_op op;
    struct harness_result r;
    char *xfail, *expect, *tok[24], *save = NULL, *t, *rest = NULL;
    int nt = 0, i, rc;
    unsigned want = 0, fileref = g_last_id;
    const char *asname = NULL;
    char got[64], exp[64];
    expect = split_expect(line, &xfail);
    memset(&op, 0, sizeof(op));
    for (t = strtok_r(line, " \t", &save); t && nt < 24; t = strtok_r(NULL, " \t", &save)) {
        tok[nt++] = t;
        if (nt >= 2 && !strcmp(tok[0], "create") && !strchr(t, '=') && strcmp(t, "noname") && nt > 2) {
            /* the path: the rest of the line (it may hold spaces) */
            if (save && *save) t[strlen(t)] = ' ';
            rest = t;
            nt--;
            break;
        }
        if (nt == 4 && !strcmp(tok[0], "process")) {   /* the image: the rest of the line */
            if (save && *save) t[strlen(t)] = ' ';
            rest = t;
            nt--;
            break;
        }
    }
    if (!nt) return;
    if (!strcmp(tok[0], "record") || !strcmp(tok[0], "bug-record")) return;   /* checked against the exported logs by run.sh */
    if (!strcmp(tok[0], "sleep") && nt >= 2) { Sleep(strtoul(tok[1], NULL, 0)); return; }
    if (nt >= 2) op.pid = !strcmp(tok[1], "host") ? HARNESS_HOST_PID : (unsigned)strtoul(tok[1], NULL, 0);
    for (i = !strcmp(tok[0], "process") ? 3 : 2; i < nt; i++) {
        char *k = tok[i], *v = strchr(k, '=');
        if (v) *v++ = 0;
        if (!v) {
            if (!strcmp(k, "paging")) op.irp_flags |= 0x2 | 0x1;   /* IRP_PAGING_IO | IRP_NOCACHE */
            else if (!strcmp(k, "nocache")) op.irp_flags |= 0x1;
            else if (!strcmp(k, "delete")) op.flags |= HF_DELETE;
            else if (!strcmp(k, "noname")) op.flags |= HF_NO_NAME;
            else { printf("FAIL %s: unknown flag '%s'\n", where, k); g_failures++; return; }
        } else if (!strcmp(k, "access")) op.access = strtoul(v, NULL, 16);
        else if (!strcmp(k, "options")) op.options |= strtoul(v, NULL, 16) & 0x00ffffff;
        else if (!strcmp(k, "opflags")) op.op_flags = strtoul(v, NULL, 16);
        else if (!strcmp(k, "alloc") || !strcmp(k, "len") || !strcmp(k, "size")) op.length = strtoull(v, NULL, 0);
        else if (!strcmp(k, "norm")) to_wide(op.norm, v, 1);
        else if (!strcmp(k, "target")) to_wide(op.path, v, 0);
        else if (!strcmp(k, "as")) asname = v;
        else if (!strcmp(k, "user")) snprintf(op.user, sizeof(op.user), "%s", v);
        else if (!strcmp(k, "file")) { fileref = file_named(v); if (!fileref) { printf("FAIL %s: no open file named %s\n", where, v); g_failures++; return; } }
        else if (!strcmp(k, "fs")) { unsigned s; if (!parse_status(v, &s)) { printf("FAIL %s: bad status %s\n", where, v); g_failures++; return; } op.flags |= HF_FS_STATUS; op.fs_status = (int)s; }
        else if (!strcmp(k, "disp")) {
            size_t d;
            for (d = 0; d < sizeof(dispositions) / sizeof(dispositions[0]) && strcmp(dispositions[d].name, v); d++) ;
            if (d == sizeof(dispositions) / sizeof(dispositions[0])) { printf("FAIL %s: unknown disposition %s\n", where, v); g_failures++; return; }
            op.options |= dispositions[d].value << 24;
        } else if (!strcmp(k, "class")) {
            size_t c;
            for (c = 0; c < sizeof(classes) / sizeof(classes[0]) && strcmp(classes[c].name, v); c++) ;
            if (c == sizeof(classes) / sizeof(classes[0])) { printf("FAIL %s: unknown class %s\n", where, v); g_failures++; return; }
            op.info_class = classes[c].value;
        } else { printf("FAIL %s: unknown key %s\n", where, k); g_failures++; return; }
    }
    if (!strcmp(tok[0], "process") && rest) {
        const char *q = "\\??\\";
        int n = 0;
        op.kind = HK_PROCESS; op.ppid = (unsigned)strtoul(tok[2], NULL, 0);
        while (*q) op.path[n++] = (unsigned short)*q++;
        to_wide(op.path + n, rest, 0);
    } else if (!strcmp(tok[0], "exit")) op.kind = HK_PROCESS_EXIT;
    else if (!strcmp(tok[0], "create") && rest) { op.kind = HK_CREATE; to_wide(op.path, rest, 1); }
    else if (!strcmp(tok[0], "read")) { op.kind = HK_READ; op.file_id = fileref; }
    else if (!strcmp(tok[0], "write")) { op.kind = HK_WRITE; op.file_id = fileref; }
    else if (!strcmp(tok[0], "setinfo") && op.info_class) { op.kind = HK_SETINFO; op.file_id = fileref; }
    else if (!strcmp(tok[0], "cleanup")) { op.kind = HK_CLEANUP; op.file_id = fileref; }
    else if (!strcmp(tok[0], "detach")) op.kind = HK_DETACH;
    else if (!strcmp(tok[0], "attach")) op.kind = HK_ATTACH;
    else { printf("FAIL %s: cannot parse '%s'\n", where, tok[0]); g_failures++; return; }
    if (op.kind != HK_PROCESS && op.kind != HK_PROCESS_EXIT && op.kind != HK_CLEANUP && !expect) {
        printf("FAIL %s: %s without an expected status (=> ok|denied|HEX)\n", where, tok[0]); g_failures++; return;
    }
    if (expect && !parse_status(expect, &want)) { printf("FAIL %s: bad expectation '%s'\n", where, expect); g_failures++; return; }
    rc = harness_op(&op, &r);
    if (rc <= 0) {
        snprintf(got, sizeof(got), "harness error %d", -rc);
        verdict(where, tok[0], 0, NULL, expect ? expect : "ok", got);
        return;
    }
    if (op.kind == HK_CREATE) {
        if (r.file_id) { g_last_id = r.file_id; if (asname) name_file(asname, r.file_id); }
    }
    if (!expect) return;
    snprintf(got, sizeof(got), "0x%08x (pre %d, post %u)", (unsigned)r.final_status, r.pre_status, r.post_called);
    snprintf(exp, sizeof(exp), "0x%08x", want);
    verdict(where, tok[0], (unsigned)r.final_status == want, xfail, exp, got);
}

static void run_cli(char *args, const char *where, char *expect, const char *xfail)
{
    wchar_t cmd[2048], outpath[MAX_PATH];
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    SECURITY_ATTRIBUTES sa = { sizeof(sa), NULL, TRUE };
    HANDLE out;
    DWORD code = 1, n = 0;
    char buf[8192], *text = NULL, got[160];
    int want_ok, passed;
    if (!expect) { printf("FAIL %s: cli without => ok|fail\n", where); g_failures++; return; }
    want_ok = !strncmp(expect, "ok", 2);
    if (!want_ok && strncmp(expect, "fail", 4)) { printf("FAIL %s: bad cli expectation '%s'\n", where, expect); g_failures++; return; }
    text = strchr(expect, '"');
    if (text) { char *e = strrchr(text + 1, '"'); text++; if (e) *e = 0; }
    swprintf(outpath, MAX_PATH, L"%ls\\cli-output.txt", g_exe_dir);
    out = CreateFileW(outpath, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, CREATE_ALWAYS, 0, NULL);
    swprintf(cmd, 2048, L"\"%ls\\fltpolicy.exe\" %hs", g_exe_dir, args);
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si); si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE); si.hStdOutput = out; si.hStdError = out;
    if (!CreateProcessW(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)) {
        printf("FAIL %s: cannot run fltpolicy.exe: error %lu\n", where, GetLastError()); g_failures++; CloseHandle(out); return;
    }
    WaitForSingleObject(pi.hProcess, 60000);
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hProcess); CloseHandle(pi.hThread);
    SetFilePointer(out, 0, NULL, FILE_BEGIN);
    ReadFile(out, buf, sizeof(buf) - 1, &n, NULL);
    CloseHandle(out);
    buf[n] = 0;
    printf("---- fltpolicy %s (pid %lu, exit %lu)\n%s%s----\n", args, pi.dwProcessId, code, buf, n && buf[n - 1] != '\n' ? "\n" : "");
    g_last_cli_failed = code != 0;
    passed = (want_ok ? code == 0 : code != 0) && (!text || strstr(buf, text));
    snprintf(got, sizeof(got), "exit %lu%s", code, text && !strstr(buf, text) ? " without the text" : "");
    verdict(where, "cli", passed, xfail, expect, got);
}

static void send_config(const char *where)
{
    struct harness_op op;
    struct harness_result r;
    int rc;
    memset(&op, 0, sizeof(op));
    op.kind = HK_CONFIG;
    op.flags = (g_compat ? HC_IOCTL_COMPAT : 0) | (g_notadmin ? HC_NOT_ADMIN : 0);
    rc = harness_op(&op, &r);
    if (rc <= 0) { printf("FAIL %s: config: harness error %d\n", where, -rc); g_failures++; }
}

static void session_line(char *line, const char *where, const wchar_t *base_dir)
{
    char *xfail, *expect, *args;
    if (!strncmp(line, "cli ", 4)) {
        expect = split_expect(line, &xfail);
        args = line + 4;
        run_cli(args, where, expect, xfail);
    } else if (!strncmp(line, "config", 6) || !strncmp(line, "compat-if-failed", 16)) {
        if (!strncmp(line, "compat-if-failed", 16)) {
            if (!g_last_cli_failed) { printf("INFO %s: the last cli step succeeded: no workaround needed (remove the workaround lines and the xfail)\n", where); return; }
            g_compat = 1;
            printf("INFO %s: WORKAROUND %s: IOCTL parameters rewritten into the windows-sys 0.61.2 layout from here on\n", where, line + 17);
        } else {
            g_notadmin = strstr(line, "notadmin") != NULL;
        }
        send_config(where);
    } else if (!strncmp(line, "raw ", 4)) {
        /* this step with the IRP exactly as Wine builds it, even while the workaround is active */
        int saved = g_compat;
        g_compat = 0; send_config(where);
        session_line(line + 4, where, base_dir);
        g_compat = saved; send_config(where);
    } else if (!strncmp(line, "workaround ", 11)) {
        /* only while the workaround is active */
        if (g_compat) session_line(line + 11, where, base_dir);
        else printf("INFO %s: no workaround active: step skipped (remove it)\n", where);
    } else if (!strncmp(line, "wait-file ", 10)) {
        /* wait-file PATH MS: until PATH exists and is not empty (e.g. the
         * flush thread has opened and written the log), at most MS ms */
        char path[MAX_PATH], got[64];
        unsigned ms = 0, waited = 0;
        WIN32_FILE_ATTRIBUTE_DATA fa;
        int found = 0;
        if (sscanf(line + 10, "%259s %u", path, &ms) != 2) { printf("FAIL %s: wait-file PATH MS\n", where); g_failures++; return; }
        for (;;) {
            if (GetFileAttributesExA(path, GetFileExInfoStandard, &fa) && (fa.nFileSizeLow || fa.nFileSizeHigh)) { found = 1; break; }
            if (waited >= ms) break;
            Sleep(50); waited += 50;
        }
        snprintf(got, sizeof(got), found ? "there after %u ms" : "absent or empty after %u ms", waited);
        verdict(where, "wait-file", found, NULL, "a non-empty file", got);
    } else if (!strncmp(line, "ops ", 4)) {
        wchar_t path[MAX_PATH];
        swprintf(path, MAX_PATH, L"%ls\\%hs", base_dir, line + 4);
        run_scenario(path, line + 4);
    } else {
        scenario_line(line, where);
    }
}

static void run_file(const wchar_t *path, const char *label, int session)
{
    FILE *f = _wfopen(path, L"r");
    char line[2048], where[300];
    wchar_t dir[MAX_PATH], *slash;
    int lineno = 0;
    if (!f) { printf("FAIL cannot open %ls\n", path); g_failures++; return; }
    wcsncpy(dir, path, MAX_PATH - 1); dir[MAX_PATH - 1] = 0;
    slash = wcsrchr(dir, L'\\');
    if (slash) *slash = 0;
    while (fgets(line, sizeof(line), f)) {
        char *p = line;
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#') continue;
        snprintf(where, sizeof(where), "%s:%d", label, lineno);
        (void)session;
        session_line(p, where, dir);   /* a scenario may hold session steps too (cli, config, sleep) */
    }
    fclose(f);
}
static void run_scenario(const wchar_t *path, const char *label) { g_last_id = 0; memset(g_named, 0, sizeof(g_named)); run_file(path, label, 0); }

int wmain(int argc, wchar_t **argv)
{
    char label[MAX_PATH];
    wchar_t *slash;
    if (argc < 2) { fprintf(stderr, "usage: harnessctl SESSION\n"); return 2; }
    GetModuleFileNameW(NULL, g_exe_dir, MAX_PATH);
    slash = wcsrchr(g_exe_dir, L'\\');
    if (slash) *slash = 0;
    slash = wcsrchr(argv[1], L'\\');
    snprintf(label, sizeof(label), "%ls", slash ? slash + 1 : argv[1]);
    printf("INFO harnessctl pid %lu\n", GetCurrentProcessId());
    run_file(argv[1], label, 1);
    if (g_dev != INVALID_HANDLE_VALUE) CloseHandle(g_dev);
    printf("DONE harnessctl failures %d\n", g_failures);
    return g_failures ? 1 : 0;
}
