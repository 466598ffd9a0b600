// JwtVerifier: the header and payload are decoded and checked here (strict base64url and JSON)
// before libjwt verifies the signature, so the algorithm is never chosen by the token.

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth/jwt_json.hpp"
#include "protocol/request.hpp"
#include "protocol/user_id.hpp"
#include "realtime/auth.hpp"

namespace realtime {
namespace {

using detail::jwt_json::JsonReader;
using detail::jwt_json::read_object;

// ---------------------------------------------------------------------------------------------
// Compact serialisation.

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Unpadded base64url, as JWS uses it.
bool base64url_decode(std::string_view text, std::string& out) {
  if (text.size() % 4 == 1) return false;
  out.clear();
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (const char c : text) {
    const int value = base64url_value(c);
    if (value < 0) return false;
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>((bits >> bit_count) & 0xFF));
    }
  }
  return true;
}

bool is_base64url(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return base64url_value(c) >= 0; });
}

struct CompactParts {
  std::string_view header;
  std::string_view payload;
  std::string_view signature;
};

// header.payload.signature, each part base64url (the signature may be empty here).
std::optional<CompactParts> split_compact(std::string_view token) {
  const std::size_t first = token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  const std::size_t second = token.find('.', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  if (token.find('.', second + 1) != std::string_view::npos) return std::nullopt;
  CompactParts parts{token.substr(0, first), token.substr(first + 1, second - first - 1),
                     token.substr(second + 1)};
  if (parts.header.empty() || parts.payload.empty()) return std::nullopt;
  if (!is_base64url(parts.header) || !is_base64url(parts.payload) ||
      !is_base64url(parts.signature)) {
    return std::nullopt;
  }
  return parts;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

// The JOSE header: an object with a string "alg", an optional "typ" of "JWT", and no "crit" (no
// extension is understood, so RFC 7515 says to refuse it). Returns the "alg" value.
std::optional<std::string> parse_header(std::string_view json) {
  std::string alg;
  bool has_alg = false;
  const bool ok = read_object(json, [&](const std::string& key, JsonReader& reader) {
    if (key == "alg") {
      has_alg = true;
      return reader.read_string(&alg);
    }
    if (key == "typ") {
      std::string typ;
      return reader.read_string(&typ) && equals_ignoring_case(typ, "JWT");
    }
    if (key == "crit") return false;
    return reader.skip_value();
  });
  if (!ok || !has_alg) return std::nullopt;
  return alg;
}

bool is_json_object(std::string_view json) {
  return read_object(json,
                     [](const std::string&, JsonReader& reader) { return reader.skip_value(); });
}

// ---------------------------------------------------------------------------------------------
// Claims, read from libjwt's parse of the verified payload.

struct JwtDeleter {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

struct MallocDeleter {
  void operator()(char* text) const { std::free(text); }
};

// NumericDates are kept within +-kDateLimit seconds so that adding a leeway never overflows.
constexpr std::int64_t kDateLimit = std::int64_t{1} << 40;  // ~35,000 years
constexpr std::int64_t kMaxLeewaySeconds = 86400;

enum class Rounding { down, up };

// A JSON number as whole seconds: fractions rounded as asked, out-of-range values saturated.
std::optional<std::int64_t> numeric_date(std::string_view number, Rounding rounding) {
  const bool is_integer = number.find_first_of(".eE") == std::string_view::npos;
  const bool negative = !number.empty() && number.front() == '-';
  if (is_integer) {
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (error == std::errc::result_out_of_range) return negative ? -kDateLimit : kDateLimit;
    if (error != std::errc{} || end != number.data() + number.size()) return std::nullopt;
    return std::clamp(value, -kDateLimit, kDateLimit);
  }
  double value = 0;
  const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (error == std::errc::result_out_of_range) {
    // Too large in magnitude, or too close to zero.
    const std::size_t exponent = number.find_first_of("eE");
    const bool tiny = exponent != std::string_view::npos && exponent + 1 < number.size() &&
                      number[exponent + 1] == '-';
    if (tiny) return 0;
    return negative ? -kDateLimit : kDateLimit;
  }
  if (error != std::errc{} || end != number.data() + number.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  value = rounding == Rounding::down ? std::floor(value) : std::ceil(value);
  if (value >= static_cast<double>(kDateLimit)) return kDateLimit;
  if (value <= static_cast<double>(-kDateLimit)) return -kDateLimit;
  return static_cast<std::int64_t>(value);
}

// The JSON text of a claim: nullopt when absent; `failed` when present but unreadable.
std::optional<std::string> claim_json(jwt_t* jwt, const char* name, bool& failed) {
  errno = 0;
  if (jwt_get_grant(jwt, name) == nullptr && errno == ENOENT) return std::nullopt;
  std::unique_ptr<char, MallocDeleter> text(jwt_get_grants_json(jwt, name));
  if (text == nullptr) {
    failed = true;
    return std::nullopt;
  }
  return std::string(text.get());
}

// "exp" / "nbf": absent, or a JSON number (else `failed`).
std::optional<std::int64_t> date_claim(jwt_t* jwt, const char* name, Rounding rounding,
                                       bool& failed) {
  const auto json = claim_json(jwt, name, failed);
  if (!json) return std::nullopt;
  JsonReader reader(*json);
  std::string_view number;
  if (!reader.read_number(&number) || !reader.at_end()) {
    failed = true;
    return std::nullopt;
  }
  auto seconds = numeric_date(number, rounding);
  if (!seconds) failed = true;
  return seconds;
}

// "aud" is a string or an array of strings, one of which must be `audience`.
bool audience_matches(jwt_t* jwt, std::string_view audience) {
  bool failed = false;
  const auto json = claim_json(jwt, "aud", failed);
  if (!json) return false;
  JsonReader reader(*json);
  bool found = false;
  std::string value;
  if (reader.peek() == '"') {
    if (!reader.read_string(&value)) return false;
    found = value == audience;
  } else {
    if (!reader.consume('[')) return false;
    if (!reader.consume(']')) {
      do {
        value.clear();
        if (!reader.read_string(&value)) return false;
        found = found || value == audience;
      } while (reader.consume(','));
      if (!reader.consume(']')) return false;
    }
  }
  return found && reader.at_end();
}

// "rooms": an array of room names, or of prefixes of one ending in '*' (a bare "*": any room).
std::optional<std::vector<std::string>> rooms_claim(std::string_view json) {
  JsonReader reader(json);
  std::vector<std::string> rooms;
  if (!reader.consume('[')) return std::nullopt;
  if (!reader.consume(']')) {
    do {
      std::string entry;
      if (!reader.read_string(&entry)) return std::nullopt;
      const bool prefix = entry.ends_with('*');
      const std::string_view name =
          prefix ? std::string_view(entry).substr(0, entry.size() - 1) : std::string_view(entry);
      // A prefix is the start of a valid name: its characters are a room's, and it is shorter.
      const bool valid = prefix ? (name.empty() || protocol::is_valid_room(name)) &&
                                      name.size() < protocol::kMaxRoomLength
                                : protocol::is_valid_room(name);
      if (!valid) return std::nullopt;
      rooms.push_back(std::move(entry));
    } while (reader.consume(','));
    if (!reader.consume(']')) return std::nullopt;
  }
  if (!reader.at_end()) return std::nullopt;
  return rooms;
}

// A subject is the user id of the token's sockets: the publish API's rule for user ids.
static_assert(JwtVerifier::max_subject_bytes == protocol::kMaxUserIdBytes);
bool valid_subject(std::string_view subject) { return protocol::is_valid_user_id(subject); }

Clock::time_point to_time_point(std::int64_t seconds_since_epoch) {
  using std::chrono::seconds;
  constexpr auto max_seconds = std::chrono::floor<seconds>(Clock::duration::max()).count();
  constexpr auto min_seconds = std::chrono::ceil<seconds>(Clock::duration::min()).count();
  if (seconds_since_epoch >= max_seconds) return Clock::time_point::max();
  if (seconds_since_epoch <= min_seconds) return Clock::time_point::min();
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(seconds(seconds_since_epoch)));
}

jwt_alg_t libjwt_algorithm(JwtAlgorithm algorithm) {
  switch (algorithm) {
    case JwtAlgorithm::hs256:
      return JWT_ALG_HS256;
    case JwtAlgorithm::rs256:
      return JWT_ALG_RS256;
    case JwtAlgorithm::es256:
      return JWT_ALG_ES256;
    case JwtAlgorithm::none:
      break;
  }
  return JWT_ALG_NONE;
}

// ---------------------------------------------------------------------------------------------
// Public keys.

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

// Never prompt on a terminal for a passphrase.
int refuse_passphrase(char*, int, int, void*) { return 0; }

BioPtr memory_bio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// A PUBLIC KEY block, or the key of a CERTIFICATE block.
PkeyPtr read_public_key(std::string_view pem) {
  if (pem.size() > std::size_t{1024} * 1024) return nullptr;
  if (auto bio = memory_bio(pem)) {
    if (PkeyPtr key{PEM_read_bio_PUBKEY(bio.get(), nullptr, refuse_passphrase, nullptr)}) {
      return key;
    }
  }
  if (auto bio = memory_bio(pem)) {
    if (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr)}) {
      return PkeyPtr(X509_get_pubkey(cert.get()));
    }
  }
  return nullptr;
}

struct LoadedKey {
  JwtAlgorithm algorithm = JwtAlgorithm::none;
  std::string pem;  // canonical SubjectPublicKeyInfo PEM, what libjwt reads
};

std::variant<LoadedKey, std::string> load_public_key(std::string_view pem) {
  if (pem.find("PRIVATE KEY") != std::string_view::npos) {
    return std::string(
        "the JWT public key PEM holds a private key; give the public key instead "
        "(openssl pkey -in key.pem -pubout)");
  }
  PkeyPtr key = read_public_key(pem);
  ERR_clear_error();  // failed attempts leave errors queued on this thread
  if (!key) {
    return std::string(
        "the JWT public key is not a readable PEM public key or certificate "
        "(expected -----BEGIN PUBLIC KEY----- or -----BEGIN CERTIFICATE-----)");
  }
  LoadedKey loaded;
  switch (EVP_PKEY_get_base_id(key.get())) {
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(key.get());
      if (bits < 2048) {
        return "the JWT public key is a " + std::to_string(bits) +
               "-bit RSA key; RS256 needs at least 2048 bits";
      }
      loaded.algorithm = JwtAlgorithm::rs256;
      break;
    }
    case EVP_PKEY_EC: {
      char group[64] = {};
      std::size_t length = 0;
      if (EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group,
                                         sizeof(group), &length) != 1) {
        ERR_clear_error();
        return std::string(
            "the JWT public key is an EC key on an unnamed curve; ES256 needs P-256");
      }
      const std::string_view name(group, length);
      if (name != "prime256v1" && name != "P-256") {
        return "the JWT public key is an EC key on curve " + std::string(name) +
               "; only P-256 (ES256) is supported";
      }
      loaded.algorithm = JwtAlgorithm::es256;
      break;
    }
    default:
      return std::string(
          "the JWT public key type is not supported; use an RSA key (RS256) or an EC P-256 key "
          "(ES256)");
  }
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_PUBKEY(out.get(), key.get()) != 1) {
    ERR_clear_error();
    return std::string("the JWT public key could not be re-encoded");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  if (size <= 0 || data == nullptr)
    return std::string("the JWT public key could not be re-encoded");
  loaded.pem.assign(data, static_cast<std::size_t>(size));
  return loaded;
}

}  // namespace

std::string_view to_string(JwtAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case JwtAlgorithm::none:
      return "none";
    case JwtAlgorithm::hs256:
      return "HS256";
    case JwtAlgorithm::rs256:
      return "RS256";
    case JwtAlgorithm::es256:
      return "ES256";
  }
  return "unknown";
}

std::string_view to_string(TokenError error) noexcept {
  switch (error) {
    case TokenError::missing:
      return "missing";
    case TokenError::malformed:
      return "malformed";
    case TokenError::bad_algorithm:
      return "bad_algorithm";
    case TokenError::bad_signature:
      return "bad_signature";
    case TokenError::expired:
      return "expired";
    case TokenError::not_yet_valid:
      return "not_yet_valid";
    case TokenError::bad_issuer:
      return "bad_issuer";
    case TokenError::bad_audience:
      return "bad_audience";
    case TokenError::no_subject:
      return "no_subject";
    case TokenError::not_configured:
      return "not_configured";
  }
  return "unknown";
}

std::variant<JwtVerifier, std::string> JwtVerifier::create(const JwtConfig& config) {
  if (config.leeway.count() < 0 || config.leeway.count() > kMaxLeewaySeconds) {
    return "the JWT leeway must be between 0 and " + std::to_string(kMaxLeewaySeconds) + " seconds";
  }
  if (!config.hs256_secret.empty() && !config.public_key_pem.empty()) {
    return std::string(
        "both a JWT secret (HS256) and a JWT public key are set; configure only one, the "
        "algorithm follows from it");
  }
  JwtVerifier verifier;
  if (!config.hs256_secret.empty()) {
    if (config.hs256_secret.size() > 4096) {
      return std::string("the JWT secret is longer than 4096 bytes");
    }
    verifier.algorithm_ = JwtAlgorithm::hs256;
    verifier.key_ = config.hs256_secret;
  } else if (!config.public_key_pem.empty()) {
    auto loaded = load_public_key(config.public_key_pem);
    if (auto* error = std::get_if<std::string>(&loaded)) return std::move(*error);
    auto& key = std::get<LoadedKey>(loaded);
    verifier.algorithm_ = key.algorithm;
    verifier.key_ = std::move(key.pem);
  }
  verifier.issuer_ = config.issuer;
  verifier.audience_ = config.audience;
  verifier.leeway_ = config.leeway;
  return verifier;
}

std::variant<TokenClaims, TokenError> JwtVerifier::verify(std::string_view token,
                                                          Clock::time_point now) const {
  if (!enabled()) return TokenError::not_configured;
  if (token.empty()) return TokenError::missing;
  if (token.size() > max_token_bytes) return TokenError::malformed;

  // Structure and header first: the algorithm is ours, not the token's.
  const auto parts = split_compact(token);
  if (!parts) return TokenError::malformed;
  std::string decoded;
  if (!base64url_decode(parts->header, decoded)) return TokenError::malformed;
  const auto alg = parse_header(decoded);
  if (!alg) return TokenError::malformed;
  if (*alg != to_string(algorithm_)) return TokenError::bad_algorithm;
  if (!base64url_decode(parts->payload, decoded) || !is_json_object(decoded)) {
    return TokenError::malformed;
  }
  if (parts->signature.empty()) return TokenError::bad_signature;

  // Signature.
  const std::string token_text(token);
  jwt_t* raw = nullptr;
  const int rc =
      jwt_decode(&raw, token_text.c_str(), reinterpret_cast<const unsigned char*>(key_.data()),
                 static_cast<int>(key_.size()));
  const JwtPtr jwt(raw);
  ERR_clear_error();  // a failed verification leaves errors queued on this thread, where TLS runs
  if (rc != 0 || jwt == nullptr) return TokenError::bad_signature;
  if (jwt_get_alg(jwt.get()) != libjwt_algorithm(algorithm_)) return TokenError::bad_algorithm;

  // Time.
  bool failed = false;
  const auto exp = date_claim(jwt.get(), "exp", Rounding::down, failed);
  const auto nbf = date_claim(jwt.get(), "nbf", Rounding::up, failed);
  if (failed) return TokenError::malformed;
  const std::int64_t now_seconds = std::clamp<std::int64_t>(
      std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count(), -kDateLimit,
      kDateLimit);
  const std::int64_t leeway = leeway_.count();
  if (exp && now_seconds >= *exp + leeway) return TokenError::expired;
  if (nbf && now_seconds < *nbf - leeway) return TokenError::not_yet_valid;

  // Who issued it, for whom, about whom.
  if (!issuer_.empty()) {
    const char* iss = jwt_get_grant(jwt.get(), "iss");
    if (iss == nullptr || issuer_ != iss) return TokenError::bad_issuer;
  }
  if (!audience_.empty() && !audience_matches(jwt.get(), audience_)) {
    return TokenError::bad_audience;
  }
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (sub == nullptr) return TokenError::no_subject;
  const std::string_view subject(sub, strnlen(sub, max_subject_bytes + 1));
  if (!valid_subject(subject)) return TokenError::no_subject;

  TokenClaims claims;
  claims.subject = std::string(subject);
  if (exp) claims.expires_at = to_time_point(*exp);
  bool unreadable = false;
  if (const auto rooms = claim_json(jwt.get(), "rooms", unreadable)) {
    claims.rooms = rooms_claim(*rooms);
    if (!claims.rooms) return TokenError::malformed;
  }
  if (unreadable) return TokenError::malformed;
  return claims;
}

bool rooms_claim_allows(const std::vector<std::string>& rooms, std::string_view room) noexcept {
  return std::any_of(rooms.begin(), rooms.end(), [room](const std::string& entry) {
    if (entry.ends_with('*')) {
      return room.starts_with(std::string_view(entry).substr(0, entry.size() - 1));
    }
    return entry == room;
  });
}

}  // namespace realtime
