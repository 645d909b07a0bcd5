// The rules an event must follow (SPEC sections 1 and 6), shared by every way in: the
// event table (CSV and Arrow rows), the compatible class, and the query readers
// (internal).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gpucredit/types.hpp"

namespace gpucredit {

namespace detail {
/// Why add(timestamp, amount, expiration) is bad input, or nullptr when it is fine.
const char* add_problem(timestamp_t at, amount_t amount, timestamp_t expiration) noexcept;
/// Why use(amount) is bad input, or nullptr when it is fine.
const char* use_problem(amount_t amount) noexcept;
/// Why run(start, rate, ticks) is bad input (SPEC section 10), or nullptr when it is fine.
const char* run_problem(timestamp_t start, amount_t rate, std::int64_t ticks) noexcept;
/// An add's expiration from its sixth column read as `form`: the duration itself, or
/// `end - at` for an end (throws `input_error` naming `source` and `line` when the end
/// is before `at`, or the credit lasts longer than int64 counts).
std::int64_t expiration_of(timestamp_t at, std::int64_t sixth, expiration_form form, const std::string& source,
                           std::uint64_t line);
/// The op a file or column names ("add", "use", "run"), or nullopt for another word.
std::optional<op> parse_op(std::string_view name) noexcept;
/// Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
/// nothing past U+10FFFF). Names (accounts, credit labels) must be, and hold no NUL.
bool valid_utf8(std::string_view text) noexcept;
/// Why `name` is not a valid name (SPEC section 6: non-empty, valid UTF-8, no NUL),
/// as "missing FIELD", "NUL byte in FIELD" or "invalid UTF-8 in FIELD"; empty when it
/// is fine. The one rule for every way in: files, Arrow tables and calls.
std::string name_problem(std::string_view name, std::string_view field);
/// A field as error messages show it: at most 40 bytes, in quotes, control bytes written
/// as \xHH so that the message stays one line.
std::string shown(std::string_view field);
}  // namespace detail

}  // namespace gpucredit
