// Authentication primitives: JWT verification and API-key checks. No I/O, no Asio, no logging; the
// caller decides what to log, and must never log the tokens or keys themselves.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace realtime {

using Clock = std::chrono::system_clock;  // the same alias as in realtime/message.hpp

// What JwtVerifier::create() is given; mirrors the --jwt-* flags.
struct JwtConfig {
  std::string hs256_secret;    // HS256 key; empty: none
  std::string public_key_pem;  // PEM text (not a path) of a public key or certificate:
                               // RSA -> RS256, EC P-256 -> ES256
  std::string issuer;          // non-empty: "iss" must equal it
  std::string audience;        // non-empty: "aud" (a string or an array of strings) must contain it
  std::chrono::seconds leeway{30};  // clock skew tolerated on "exp" and "nbf"; 0 to 86400 s
};

// The one signature algorithm a verifier accepts, fixed by the key it was configured with.
enum class JwtAlgorithm : std::uint8_t { none, hs256, rs256, es256 };
// "none", "HS256", "RS256", "ES256": the JOSE names.
std::string_view to_string(JwtAlgorithm algorithm) noexcept;

// What a valid token says about its bearer.
struct TokenClaims {
  std::string subject;                          // "sub": the user id; 1 to 256 bytes, no controls
  std::optional<Clock::time_point> expires_at;  // "exp" without leeway; nullopt: no "exp"
  // "rooms": the rooms the token's sockets may join; nullopt (no claim): any. Each entry is a room
  // name, or a prefix ending in '*' ("team-7:*": every room that starts "team-7:"; "*": any).
  std::optional<std::vector<std::string>> rooms;
};

// Whether a "rooms" claim lets its sockets join `room` (an entry equal to it, or a '*' entry whose
// prefix it starts with).
bool rooms_claim_allows(const std::vector<std::string>& rooms, std::string_view room) noexcept;

enum class TokenError : std::uint8_t {
  missing,         // empty token
  malformed,       // not a compact JWS, too large, bad base64url or JSON, bad claim types
  bad_algorithm,   // header "alg" is not the configured algorithm ("none" included)
  bad_signature,   // signature does not verify with the configured key
  expired,         // now >= exp + leeway
  not_yet_valid,   // now < nbf - leeway
  bad_issuer,      // issuer configured and "iss" absent or different
  bad_audience,    // audience configured and not in "aud"
  no_subject,      // "sub" absent, not a string, empty, longer than 256 bytes or with controls
  not_configured,  // the verifier has no key
};
// "missing", "malformed", ...: the enumerator names, stable, fit for logs and metric labels.
std::string_view to_string(TokenError error) noexcept;

// JwtVerifier checks compact JWS tokens against a single key fixed at construction: an HS256
// secret, or a public key whose type selects RS256 or ES256. The token's header must name exactly
// that algorithm; anything else ("none", or HS256 signed with the RSA public key as the secret) is
// refused before any signature work. Then the signature (libjwt), "exp"/"nbf" with the leeway,
// "iss"/"aud" when configured, and "sub" are checked; a "rooms" claim that is not an array of
// room names and prefixes (see TokenClaims) makes the token malformed.
//
// Ownership: a plain value; it owns copies of its keys. Thread safety: immutable after
// construction, so one instance may be shared by any number of threads calling verify().
class JwtVerifier {
 public:
  static constexpr std::size_t max_token_bytes = 8192;
  static constexpr std::size_t max_subject_bytes = 256;

  // A verifier with no key: enabled() is false and verify() answers not_configured.
  JwtVerifier() = default;

  // Builds a verifier, or explains (without repeating key material) why the configuration is
  // unusable: both a secret and a public key, an unreadable PEM, a private key, an unsupported key
  // type or curve, an RSA key under 2048 bits, a leeway out of range.
  static std::variant<JwtVerifier, std::string> create(const JwtConfig& config);

  // True when a key is configured.
  bool enabled() const noexcept { return algorithm_ != JwtAlgorithm::none; }
  JwtAlgorithm algorithm() const noexcept { return algorithm_; }

  // Verifies `token` (without any "Bearer " prefix) at time `now`.
  std::variant<TokenClaims, TokenError> verify(std::string_view token, Clock::time_point now) const;

 private:
  JwtAlgorithm algorithm_ = JwtAlgorithm::none;
  std::string key_;  // HS256: the secret; RS256/ES256: the public key as canonical PEM
  std::string issuer_;
  std::string audience_;
  std::chrono::seconds leeway_{0};
};

// Compares a configured API key with a presented one in time independent of where they differ and
// of their lengths (SHA-256 of both, then CRYPTO_memcmp). An empty `expected` never matches.
bool api_key_matches(std::string_view expected, std::string_view presented) noexcept;

// The credentials of an "Authorization: Bearer <token>" header value: the scheme is matched
// case-insensitively, surrounding spaces and tabs are ignored. nullopt for another scheme, an empty
// token, or a token containing spaces or control characters. The view points into the argument.
std::optional<std::string_view> bearer_token(std::string_view authorization_header) noexcept;
// Whether the header value is of the Bearer scheme at all, well-formed or not (a Bearer header
// without one usable token is a bad credential, not an absent one; another scheme is not ours).
bool names_bearer_scheme(std::string_view authorization_header) noexcept;

}  // namespace realtime
