# A private nginx for the benchmarks: Debian's /usr/sbin/nginx with the
# module from build/, in a temp prefix, on a free port.  Sourced by the
# bench/*.sh scripts after they set `repo` (the checkout's root):
#
#   . "$repo"/bench/lib/nginx.sh
#   bench_require wrk curl                 # tools and the module, or exit
#   nginx_prefix booking                   # sets prefix, makes its dirs
#   port=$(free_port)
#   nginx_write_conf 1 4096 <<EOF          # workers, worker_connections;
#       teleclinic_zone ...;               # stdin: the rest of http {}
#       server { ... }
#   EOF
#   nginx_start [taskset -c 0]             # sets nginx_master
#   nginx_wait_up "http://127.0.0.1:$port/api/v1/departments"
#   ...
#   nginx_stop "$nginx_master"             # QUIT, then KILL after 10 s
#   nginx_remove_prefix                    # unless KEEP=1
#
# Environment: NGINX (/usr/sbin/nginx), TELECLINIC_MODULE (build/ in the
# checkout), BENCH_TMPDIR (where the prefix goes, /tmp; keep it on a real
# disk: fsync on tmpfs costs nothing), KEEP=1 keeps the prefix.

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=${TELECLINIC_MODULE:-$repo/build/ngx_http_teleclinic_module.so}
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

bench_name=${0##*/}
prefix=""
nginx_master=""


# bench_require TOOL...: exits unless each tool and the module are there
bench_require() {
    local tool

    for tool in "$@"; do
        command -v "$tool" >/dev/null || {
            echo "$bench_name: $tool is missing" >&2
            exit 1
        }
    done

    [ -f "$MODULE" ] || {
        echo "$bench_name: no $MODULE (run make)" >&2
        exit 1
    }
}

# nginx_prefix NAME: a new temp prefix with logs/, tmp/ and state/
nginx_prefix() {
    prefix=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/teleclinic-$1.XXXXXX")
    mkdir -p "$prefix"/logs "$prefix"/tmp "$prefix"/state
}

nginx_remove_prefix() {
    [ -n "$prefix" ] || return 0

    if [ "${KEEP:-0}" = 1 ]; then
        echo "prefix kept: $prefix"
    else
        rm -rf "$prefix"
    fi
}

# a TCP port on 127.0.0.1 that nothing listens on now
free_port() {
    perl -MIO::Socket::IP -e 'print IO::Socket::IP->new(Listen => 1,
        LocalHost => "127.0.0.1", LocalPort => 0)->sockport'
}

# nginx_write_conf WORKERS CONNECTIONS: $prefix/nginx.conf, its http {}
# holding the prefix's temp paths, no access log, endless keepalive, and
# then what stdin says
nginx_write_conf() {
    local user=""

    if [ "$(id -u)" = 0 ]; then
        # workers would otherwise run as nobody and could not write the
        # prefix
        user="user $(id -un) $(id -gn);"
    fi

    {
        cat <<EOF
load_module $STREAM_MODULE;
load_module $MODULE;

$user
worker_processes $1;
pid $prefix/logs/nginx.pid;
error_log $prefix/logs/error.log notice;

events {
    worker_connections $2;
}

http {
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;

    access_log off;
    keepalive_requests 10000000;

EOF
        cat
        echo "}"
    } > "$prefix"/nginx.conf
}

# nginx_start [COMMAND...]: nginx in the foreground of a background job,
# run through COMMAND (taskset ...) if given; nginx_master is its pid
nginx_start() {
    "$@" "$NGINX" -p "$prefix/" -c "$prefix/nginx.conf" \
        -e "$prefix/logs/error.log" -g 'daemon off;' &
    nginx_master=$!
}

# nginx_wait_up URL [SECONDS]: until URL answers 2xx (30 s at most), or
# exits with the end of the error log when nginx does not come up
nginx_wait_up() {
    for _ in $(seq 1 $(( ${2:-30} * 10 ))); do
        curl -sf -o /dev/null "$1" && return 0
        kill -0 "$nginx_master" 2>/dev/null || break
        sleep 0.1
    done

    echo "$bench_name: nginx did not come up" >&2
    tail -20 "$prefix"/logs/error.log >&2
    exit 1
}

# the pids of a master's workers (and other children)
nginx_workers() {
    cat /proc/"$1"/task/*/children 2>/dev/null || true
}

# nginx_stop MASTER: a graceful stop; after 10 s, SIGKILL to the master
# and its workers
nginx_stop() {
    local master=$1 workers pid

    [ -n "$master" ] && kill -0 "$master" 2>/dev/null || return 0

    workers=$(nginx_workers "$master")
    kill -QUIT "$master" 2>/dev/null || true

    for _ in $(seq 1 100); do
        kill -0 "$master" 2>/dev/null || break
        sleep 0.1
    done

    if kill -0 "$master" 2>/dev/null; then
        for pid in $master $workers; do
            kill -KILL "$pid" 2>/dev/null || true
        done
    fi

    # only a child of this shell can be waited for
    wait "$master" 2>/dev/null || true
}
