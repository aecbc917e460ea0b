/*
 * toolfmt.h - output helpers shared by the command-line tools (`ckpt`,
 * `ckpt-admin`, `ckpt-cluster`): human-readable sizes and JSON strings.
 */
#ifndef CKPT_TOOLFMT_H
#define CKPT_TOOLFMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/**
 * @brief Format a byte count for people: "512 B", "1.5 MiB", ... (binary
 * units up to PiB, one decimal from KiB on).
 * @param[out] out  cut to cap bytes like snprintf
 * @return out
 */
const char *ckpt_fmt_bytes(uint64_t bytes, char *out, size_t cap);

/**
 * @brief Write s to f as a JSON string literal: quotes, with '"' and '\'
 * escaped and control characters as \u00XX (bytes >= 0x80 pass through,
 * so UTF-8 stays UTF-8).
 */
void ckpt_json_str(FILE *f, const char *s);

#endif
