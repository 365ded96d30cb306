/* main.c - placeholder until the RPC loop lands (replaced by the foundation work). */
#include <stdio.h>
int main(void) { fputs("wisp: not built yet\n", stderr); return 1; }
