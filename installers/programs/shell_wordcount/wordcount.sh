#!/bin/sh
# wordcount: counts lines, words and bytes of text files; one processing per file.
# A POSIX shell program, to show that any language can ask the license agent:
# before each file it runs `license-agent consume PRODUCT 1 --json` and goes on only
# when the agent answers exit 0 (3 = none left, 4 = invalid licence, 2 = bad input).
#
#   wordcount.sh FILE...
#
# The product id comes from $TOKENRENT_PRODUCT_ID, product.json beside this script, or the
# storefront's install record (../current.json);
# the agent command from $LICENSE_AGENT (default: license-agent on the PATH).
set -u
here=$(cd "$(dirname "$0")" && pwd)
agent=${LICENSE_AGENT:-license-agent}
product=${TOKENRENT_PRODUCT_ID:-}
# product.json beside the script, else the storefront's install record one folder up.
for record in "$here/product.json" "$here/../current.json"; do
    if [ -z "$product" ] && [ -r "$record" ]; then
        product=$(sed -n 's/.*"product_id"[^"0-9A-Za-z]*"\{0,1\}\([0-9A-Za-z._-]*\).*/\1/p' "$record" | head -n 1)
    fi
done
if [ -z "$product" ]; then
    echo "wordcount: no product id (set TOKENRENT_PRODUCT_ID or ship product.json)" >&2
    exit 2
fi
if [ $# -eq 0 ]; then
    echo "usage: wordcount.sh FILE..." >&2
    exit 2
fi

# The value of a JSON field in the agent's one-line answer (enough for flat fields).
field() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" | head -n 1
}

status=0
for file in "$@"; do
    if [ ! -r "$file" ]; then
        echo "wordcount: cannot read $file (no processing used)" >&2
        status=1
        continue
    fi
    answer=$("$agent" consume "$product" 1 --json 2>/dev/null)
    rc=$?
    if [ $rc -ne 0 ]; then
        message=$(field "$answer" message)
        store=$(field "$answer" store_url)
        echo "wordcount: the license agent said no (exit $rc): ${message:-no answer}" >&2
        [ -n "$store" ] && echo "wordcount: buy more at $store" >&2
        exit $rc
    fi
    left=$(field "$answer" remaining)
    case "$left" in
        ''|null) left="licensed" ;;             # a permanent licence (e.g. Software A): no count
        *) left="$left processings left" ;;
    esac
    set -- $(wc -l -w -c < "$file")
    echo "$file: $1 lines, $2 words, $3 bytes ($left)"
done
exit $status
