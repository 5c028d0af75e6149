/*
 * record_input.h - builds an InvocationRecord from JSON (one object whose
 * keys are the schema's field names, as `logferry dump` prints them) or
 * from name=value pairs given on the command line (`logferry emit`).
 */
#ifndef LOGFERRY_RECORD_INPUT_H
#define LOGFERRY_RECORD_INPUT_H

#include <jansson.h>
#include <stddef.h>

#include <logferry/logferry.pb-c.h>

/* The record and the storage its pointers refer to. */
typedef struct record_input {
    Logferry__V1__InvocationRecord rec;
    Logferry__V1__InvocationRecord__AttributesEntry **attrs;
    Logferry__V1__InvocationRecord__AttributesEntry *attr_store;
    uint8_t record_id[16];
    char **owned;
    size_t n_owned;
} record_input;

/* Initialise an empty record. */
void record_input_init(record_input *ri);

/* Release what the record holds and reset it. Accepts NULL. */
void record_input_free(record_input *ri);

/* Fill from a JSON object (borrowed; strings are copied). Keys that are no
 * field of the schema are an error; "time" is accepted and ignored (it
 * repeats event_time_ns). Returns 0, or -1 with a reason in err. */
int record_input_from_json(record_input *ri, json_t *obj, char *err,
                           size_t errlen);

/* Set one field from text: name is a schema field name or
 * "attributes.KEY". Returns 0, or -1 with a reason in err. */
int record_input_set(record_input *ri, const char *name, const char *value,
                     char *err, size_t errlen);

#endif
