// The console's page: one HTML document with its CSS and JavaScript inline.
#pragma once

#include <string>
#include <string_view>

namespace swarm::console::detail {

// The page, its <style> and <script> elements carrying `nonce` (the response's
// Content-Security-Policy allows only those two). `nonce` must be base64 or hex.
std::string render_page(std::string_view nonce);

} // namespace swarm::console::detail
