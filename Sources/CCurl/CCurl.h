// libcurl for Swift. curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot
// call; these typed inline wrappers pass each kind of argument through unchanged.
#ifndef PGNODE_CCURL_H
#define PGNODE_CCURL_H

#include <curl/curl.h>

/// curl_easy_setopt with a long argument.
static inline CURLcode pgnode_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt with a curl_off_t argument (CURLOPT_POSTFIELDSIZE_LARGE).
static inline CURLcode pgnode_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt with a string argument (libcurl copies strings).
static inline CURLcode pgnode_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt with a data pointer (CURLOPT_POSTFIELDS, CURLOPT_WRITEDATA, CURLOPT_HEADERDATA).
static inline CURLcode pgnode_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt with a header list (CURLOPT_HTTPHEADER).
static inline CURLcode pgnode_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt with a write or header callback (CURLOPT_WRITEFUNCTION, CURLOPT_HEADERFUNCTION).
static inline CURLcode pgnode_curl_setopt_write_callback(CURL *handle, CURLoption option, curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_getinfo for a long result (CURLINFO_RESPONSE_CODE).
static inline CURLcode pgnode_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif
