# wrk against one nginx worker, and the table of its figures: sourced by
# bench/booking.sh and bench/record.sh after lib/nginx.sh.
#
#   bench_pin                        # pin_nginx, pin_wrk, pinned, setup_cpus
#   nginx_start $pin_nginx; ...
#   worker=$(nginx_workers "$nginx_master" | awk '{print $1}')
#   bench NAME [wrk arguments]       # one wrk run: R_* (see below)
#   best TEST                        # B_*[TEST]: the best of the rounds
#   fsyncs_start; bench ...; fsyncs_stop      # adds to fsyncs
#   table_head
#   table_line TEST NAME [TARGET]    # TEST ok is the reference, return 200
#   table_legend                     # what the columns mean
#   table_warnings TEST...           # others above 10%; fsyncs per record
#   table_invalid TEST...            # non-2xx, socket errors: returns 1
#   table_perf                       # with PERF, what perf found
#
# The script sets DURATION, CONNS, THREADS and NICE (0: as is) before
# bench_pin.  PERF=1 records each run with perf and appends its hottest
# symbols to $prefix/perf.txt (PERF=dwarf: DWARF call graphs, which see
# through the libraries' missing frame pointers; read them with KEEP=1 and
# perf report --children); VERBOSE=1 shows wrk's output.

perf_rec=""
perf_stat=""
fsyncs=""

declare -A B_RPS B_US B_WORKER B_WRK B_OTHERS B_P50 B_P99 B_NON2XX \
           B_SOCKERR


# With two or more CPUs nginx (master, worker, thread pool) goes on CPU 0
# and wrk on CPU 1; above the priority of other engineers' test suites
# (NICE) the two sides lose less of their cores to them, and what they
# still take shows in "others".
bench_pin() {
    local ncpu

    ncpu=$(nproc)

    if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
        pin_nginx="taskset -c 0"
        pin_wrk="taskset -c 1"
        pinned=1
        setup_cpus="nginx (master, worker, thread pool) on CPU 0,"
        setup_cpus="$setup_cpus wrk on CPU 1"
    else
        pin_nginx=""
        pin_wrk=""
        pinned=""
        setup_cpus="no pinning ($ncpu CPU)"
    fi

    if [ "${NICE:-0}" != 0 ] && nice -n "$NICE" true 2>/dev/null \
       && [ "$(nice -n "$NICE" nice)" = "$NICE" ]
    then
        pin_nginx="nice -n $NICE $pin_nginx"
        pin_wrk="nice -n $NICE $pin_wrk"
        setup_cpus="$setup_cpus, both at nice $NICE"
    fi

    clk=$(getconf CLK_TCK)
}

# stops what bench and fsyncs_start left running (for the EXIT trap)
bench_cleanup() {
    local pid

    for pid in $perf_rec $perf_stat; do
        kill -INT "$pid" 2>/dev/null || true
    done
}

# the worker's CPU time, its threads (the fsync thread pool) included
worker_ticks() {
    awk '{print $14 + $15}' /proc/"$worker"/stat
}

# busy and all jiffies of a CPU
cpu_ticks() {
    awk -v cpu="cpu$1" '$1 == cpu {print $2 + $3 + $4 + $7 + $8 + $9,
                                         $2 + $3 + $4 + $5 + $6 + $7 + $8
                                         + $9}' /proc/stat
}

# a percentage a / b, or 0
pct() {
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%d", (b > 0) ? 100 * a / b : 0}'
}


# bench NAME [wrk arguments]: one wrk run; sets R_RPS, R_REQS, R_NON2XX,
# R_SOCKERR, R_P50, R_P99, R_US (the worker's CPU per request), R_WORKER
# and R_WRK (% busy), R_OTHERS (what others took of nginx's / wrk's
# core), and R_STATUS, R_FIRST_ERROR from a script's BENCH_ lines
bench() {
    local name=$1 out w0 w1 b0 a0 b1 a1 c0 d0 c1 d1 start end secs file
    shift

    perf_rec=""

    # lower case first: "GET" and "PUT" would both be "---"
    file=${name,,}
    file=$prefix/perf.${file//[^a-z0-9]/-}.data

    if [ -n "${PERF:-}" ]; then
        if [ "$PERF" = dwarf ]; then
            perf record -q -F 999 --call-graph dwarf -p "$worker" \
                -o "$file" >/dev/null 2>&1 &
        else
            perf record -q -F 2999 -g -p "$worker" -o "$file" \
                >/dev/null 2>&1 &
        fi
        perf_rec=$!
        sleep 0.2
    fi

    w0=$(worker_ticks)
    read -r b0 a0 < <(cpu_ticks 0)
    read -r c0 d0 < <(cpu_ticks 1)
    start=$(date +%s.%N)

    out=$($pin_wrk /usr/bin/time -f 'BENCH_TIME %U %S' \
          wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" 2>&1) \
        || true

    end=$(date +%s.%N)
    w1=$(worker_ticks)
    read -r b1 a1 < <(cpu_ticks 0)
    read -r c1 d1 < <(cpu_ticks 1)

    if [ -n "$perf_rec" ]; then
        kill -INT "$perf_rec" 2>/dev/null || true
        wait "$perf_rec" 2>/dev/null || true
        perf_rec=""
        echo "== perf: $name" >> "$prefix"/perf.txt
        perf report -i "$file" --no-children --sort dso,symbol -g none \
            --percent-limit 1 --stdio 2>/dev/null \
            | grep -v -e '^#' -e '^$' | head -30 >> "$prefix"/perf.txt
    fi

    [ -n "${VERBOSE:-}" ] && printf '== %s\n%s\n' "$name" "$out" >&2

    R_RPS=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<< "$out")
    R_REQS=$(awk '/ requests in / {print $1}' <<< "$out")
    R_NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<< "$out")
    R_NON2XX=${R_NON2XX:-0}
    R_SOCKERR=$(sed -n 's/.*Socket errors: //p' <<< "$out")
    R_P50=$(awk '$1 == "50%" {print $2}' <<< "$out")
    R_P99=$(awk '$1 == "99%" {print $2}' <<< "$out")
    R_STATUS=$(sed -n 's/^BENCH_STATUS //p' <<< "$out")
    R_FIRST_ERROR=$(sed -n 's/^BENCH_FIRST_ERROR //p' <<< "$out")

    secs=$(awk -v s="$start" -v e="$end" 'BEGIN {print e - s}')

    # CPU: the worker's, wrk's, and what others took of each core
    R_WORKER=$(awk -v t="$((w1 - w0))" -v hz="$clk" -v s="$secs" \
               'BEGIN {printf "%d", 100 * t / hz / s}')
    R_US=$(awk -v t="$((w1 - w0))" -v hz="$clk" -v n="$R_REQS" \
           'BEGIN {printf "%.1f", n ? 1e6 * t / hz / n : 0}')
    R_WRK=$(awk -v s="$secs" '/^BENCH_TIME/ {printf "%d",
                                             100 * ($2 + $3) / s}' <<< "$out")

    if [ -n "$pinned" ]; then
        R_OTHERS="$(( $(pct $((b1 - b0)) $((a1 - a0))) - R_WORKER ))"
        R_OTHERS="$R_OTHERS/$(( $(pct $((c1 - c0)) $((d1 - d0))) - R_WRK ))"
        R_OTHERS=$(sed 's/-[0-9]*/0/g' <<< "$R_OTHERS")
    else
        R_OTHERS="-"
    fi

    if [ -z "$R_RPS" ]; then
        echo "$bench_name: wrk failed for $name:" >&2
        echo "$out" >&2
        exit 1
    fi
}


# best TEST: keeps the last bench's figures in B_<field>[TEST] when its
# req/s are the best of the rounds so far; errors of every round add up
best() {
    local t=$1

    if [ -z "${B_RPS[$t]:-}" ] || [ "$R_RPS" -gt "${B_RPS[$t]}" ]; then
        B_RPS[$t]=$R_RPS
        B_US[$t]=$R_US
        B_WORKER[$t]=$R_WORKER
        B_WRK[$t]=$R_WRK
        B_OTHERS[$t]=$R_OTHERS
        B_P50[$t]=$R_P50
        B_P99[$t]=$R_P99
    fi

    B_NON2XX[$t]=$(( ${B_NON2XX[$t]:-0} + R_NON2XX ))
    if [ -n "$R_SOCKERR" ] \
       && [ "$R_SOCKERR" != "connect 0, read 0, write 0, timeout 0" ]
    then
        B_SOCKERR[$t]="${B_SOCKERR[$t]:-}${B_SOCKERR[$t]:+; }$R_SOCKERR"
    fi
}


# fsyncs_start, fsyncs_stop: around a bench, the worker's fdatasync()
# calls counted by perf (when it may trace them) and added to fsyncs
fsyncs_start() {
    perf_stat=""

    if [ -z "${PERF:-}" ] \
       && perf stat -e syscalls:sys_enter_fdatasync -p "$worker" -- true \
          >/dev/null 2>&1
    then
        perf stat -x, -e syscalls:sys_enter_fdatasync -p "$worker" \
            -o "$prefix"/fsyncs >/dev/null 2>&1 &
        perf_stat=$!
        sleep 0.2
    fi
}

fsyncs_stop() {
    local n

    [ -n "$perf_stat" ] || return 0

    kill -INT "$perf_stat" 2>/dev/null || true
    wait "$perf_stat" 2>/dev/null || true
    perf_stat=""

    n=$(awk -F, '/fdatasync/ {print $1}' "$prefix"/fsyncs 2>/dev/null \
        || true)
    fsyncs=$(( ${fsyncs:-0} + ${n:-0} ))
}


table_head() {
    printf '\n%-24s %7s %5s %-16s %7s %5s %6s %4s %7s %8s %8s\n' \
        "" "req/s" "" "" "us/req" "byCPU" "worker" "wrk" "others" "p50" \
        "p99"
}

# table_line TEST NAME [TARGET [REF]]: one line; its req/s and CPU as a %
# of REF's (ok, return 200 (GET), by default); REF's own line has none
table_line() {
    local t=$1 ref=${4:-ok} of="" cpu=""

    if [ "$t" != "$ref" ]; then
        of="$(pct "${B_RPS[$t]}" "${B_RPS[$ref]}")%"
        cpu="$(awk -v a="${B_US[$ref]}" -v b="${B_US[$t]}" \
               'BEGIN {printf "%d", (b > 0) ? 100 * a / b : 0}')%"
    fi

    printf '%-24s %7s %5s %-16s %7s %5s %5s%% %3s%% %6s%% %8s %8s\n' \
        "$2" "${B_RPS[$t]}" "$of" "${3:-}" "${B_US[$t]}" "$cpu" \
        "${B_WORKER[$t]}" "${B_WRK[$t]}" "${B_OTHERS[$t]}" "${B_P50[$t]}" \
        "${B_P99[$t]}"
}

table_legend() {
    cat <<EOF

  req/s and its % of return 200 (GET): what the targets are about.
  us/req: the worker's CPU time (its fsync threads included) per request;
  byCPU: return 200's us/req as a % of it, the req/s ratio to expect when
  nginx's core is the only limit (other load moves it much less).
  worker, wrk: how busy each was; others: what other processes took of
  nginx's core / wrk's core (above a few % the req/s are understated).
EOF
}

# table_warnings RECORDS TEST...: the runs other processes disturbed, and
# how many of RECORDS journal records each fdatasync() carried
table_warnings() {
    local records=$1 disturbed t
    shift

    disturbed=$(for t in "$@"; do
                     tr '/' '\n' <<< "${B_OTHERS[$t]}"
                 done | sort -n | tail -1)

    if [ "$disturbed" != "-" ] && [ "${disturbed:-0}" -gt 10 ]; then
        echo "  WARNING: other processes took up to $disturbed% of a core" \
             "during the runs: the req/s (and the ratios) are unreliable;" \
             "us/req less so"
    fi

    if [ -n "$fsyncs" ] && [ "$fsyncs" -gt 0 ]; then
        echo "  $fsyncs fdatasync() calls, $((records / fsyncs)) records" \
             "each on average (group commit)"
    fi
}

# table_invalid TEST...: 1 (and why on stderr) when a test had non-2xx
# answers or socket errors
table_invalid() {
    local t status=0

    for t in "$@"; do
        if [ "${B_NON2XX[$t]}" != 0 ] || [ -n "${B_SOCKERR[$t]:-}" ]; then
            echo "INVALID: $t: ${B_NON2XX[$t]} non-2xx answers," \
                 "socket errors: ${B_SOCKERR[$t]:-none}" >&2
            status=1
        fi
    done

    return $status
}

table_perf() {
    [ -n "${PERF:-}" ] || return 0

    echo
    cat "$prefix"/perf.txt
    echo "perf data: $prefix/perf.*.data (KEEP=1 keeps them)"
}
